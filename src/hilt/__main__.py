from hilt.cli import main

main()

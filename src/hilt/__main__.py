from hilt.entry import main

main()

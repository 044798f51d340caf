"""A seeded simulator of the loop's inputs: interactions with hidden ground truth.

Used by ``hilt demo``, by tests, and on its own for capacity planning. Everything is
drawn from one ``numpy.random.Generator`` so a seed reproduces a run exactly.
"""

from hilt.sim.stream import SimConfig, SimItem, simulate_stream

__all__ = ["SimConfig", "SimItem", "simulate_stream"]

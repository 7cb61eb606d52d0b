"""The bundled example: real BigEarthNet-S1/S2 pairs with simulated clouds, and the demo run."""

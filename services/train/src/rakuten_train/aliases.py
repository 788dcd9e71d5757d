"""The registry aliases of the model's life: ``champion`` serves, ``challenger`` waits for the gate.

A module of their own, without TensorFlow: the loop's registry commands need them and must
start in a second, not after a Keras import.
"""

CHAMPION = "champion"
CHALLENGER = "challenger"

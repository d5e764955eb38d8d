"""Reading records into answers: rows and aggregates, compare and the gate, change points and
history, parity.
"""

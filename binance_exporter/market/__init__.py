"""The pure market code: the definitions and their exact arithmetic, and the order book.

No I/O, no clock, no logging.
"""

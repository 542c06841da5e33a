"""The I/O edges: sockets, processes, /proc. Everything here feeds values to portstorm.core."""

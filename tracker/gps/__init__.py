"""The receiver side: bytes from a serial port, gpsd or a log become accepted `Fix` values."""

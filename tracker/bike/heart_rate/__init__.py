"""Heart-rate strap: the pure GATT protocol and the BLE (bleak) source."""

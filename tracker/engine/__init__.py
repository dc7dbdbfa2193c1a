"""The service: wires gps, ride, storage, mmt and bike into `tracker run`."""

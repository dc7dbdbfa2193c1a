"""The handlebar: button, LEDs, device state, safe shutdown, watchdog and heart-rate strap."""

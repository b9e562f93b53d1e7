"""Sessions that heal themselves: validation by beat, the account store, alerts, QR login."""

"""The embedded reference server: the app, its quirks, its pictures and its launcher."""

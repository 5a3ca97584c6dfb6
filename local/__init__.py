"""The local emulation: the whole of lock-janitor on this machine, against moto in server mode."""

"""privmask.adapters"""

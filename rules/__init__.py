"""privmask.rules"""

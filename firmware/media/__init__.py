"""Media: RTP sessions (rtp.py), the call leg that pairs a SIP session with
its RTP (leg.py), the conference mixer (mixer.py) and prompt files (prompt.py)."""

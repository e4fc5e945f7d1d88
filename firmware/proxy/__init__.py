"""The outbound proxy with shadow registrations, and the survivability monitor."""

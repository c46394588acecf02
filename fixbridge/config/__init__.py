"""Loading and validating what the bridge runs from: specs/ (chains, tokens, venues,
instruments) and sessions/ (QuickFIX settings, counterparties, wallets).

A bad file fails before anything starts, with the file, the key and what is expected.
"""
from fixbridge.config.errors import ConfigError
from fixbridge.config.spec import Chain, Instrument, Spec, Token, Venue, load_spec
from fixbridge.config.sessions import Counterparty, SessionsConfig, WalletConfig, load_sessions

__all__ = [
    "ConfigError", "Chain", "Instrument", "Spec", "Token", "Venue", "load_spec",
    "Counterparty", "SessionsConfig", "WalletConfig", "load_sessions",
]

"""OEM adapters: one package per OEM, each a selector/regex data file per UI version plus a few overrides."""

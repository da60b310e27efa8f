"""Automated OEM portal submissions: CRM cases in, proven portal submissions out."""

__version__ = "0.1.0"

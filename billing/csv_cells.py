"""Spreadsheet formula injection in CSV text cells, for every CSV export and import.

A spreadsheet program that opens a CSV file runs a cell starting with one
of these characters as a formula, so a customer named ``=HYPERLINK(...)``
could make an operator's spreadsheet fetch a URL or run a command. OWASP
ASVS 5.0 requirement 1.2.10 gives the fix used here: prefix such a cell
with a single quote, which makes the program show it as text. Only
free-text cells get the prefix, so numbers keep their sign.
"""

# "=", "+", "-" and "@" start a formula in Excel, LibreOffice and Google
# Sheets. A leading tab, carriage return or NUL can hide one of them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\0")


def starts_like_formula(text: str) -> bool:
    """Return True when a spreadsheet could read ``text`` as a formula."""
    return text.startswith(FORMULA_PREFIXES)


def neutralise_formula(text: str) -> str:
    """Return ``text`` with a leading single quote when it starts like a formula, else unchanged."""
    if starts_like_formula(text):
        return "'" + text
    return text

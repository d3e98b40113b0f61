"""Errors of the operations app; each has a stable ``code`` and a message that names the fix."""


class OperationsError(Exception):
    code = "operations_error"


class InvalidImportFile(OperationsError):
    """The whole file cannot be imported (encoding, shape, header); nothing is written."""

    code = "invalid_import_file"


class InvalidMapping(OperationsError):
    """The mapping file is not valid; the message names the key and the fix."""

    code = "invalid_mapping"


class NotEmbedded(OperationsError):
    """The demo was asked to run on databases or a bus that are not the embedded default."""

    code = "not_embedded"

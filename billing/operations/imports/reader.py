"""Read a CSV file into records, rejecting the whole file when its shape is wrong.

The whole file is rejected, before anything is written, when it is not
UTF-8 or its quoting is broken. The same holds when a line or the header is
absurdly wide, and when a record has more or fewer fields than the header,
which is how a truncated or ragged file shows.
"""

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from billing.operations.errors import InvalidImportFile

# One physical line may hold at most this many bytes. A customer row is a few
# hundred bytes, so a megabyte line is a wrong file or an attack.
MAX_LINE_BYTES = 64 * 1024
# A header or record may have at most this many fields. Exports seen in
# practice have tens of columns; thousands mean a wrong delimiter or a bad file.
MAX_COLUMNS = 500
# One record, which may span several lines through line breaks inside quoted
# cells, may contain at most this many bytes. The check runs while the csv
# module reads the record, so a row of a million cells spread over many
# short lines is rejected before its fields fill memory.
MAX_RECORD_BYTES = 4 * MAX_LINE_BYTES

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class CsvRecord:
    """One data record: the line it starts on and its cells by column name."""

    line_number: int
    cells: dict[str, str]


@dataclass(frozen=True)
class CsvTable:
    header: list[str]
    records: list[CsvRecord]


def csv_table_read(path: Path) -> CsvTable:
    """Read ``path`` as UTF-8 CSV with one header row; raise ``InvalidImportFile`` for a bad file.

    A UTF-8 byte-order mark is dropped, blank lines and rows whose cells are
    all blank are skipped, and cells are stripped of surrounding spaces.
    Columns with a blank header name are ignored.

    NOTE: every record stays in memory, so that the whole file is validated
    before the first write. Split a file of millions of rows.
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InvalidImportFile(f"file {str(path)!r} does not exist; check the path") from None
    except IsADirectoryError:
        raise InvalidImportFile(f"{str(path)!r} is a folder; pass the path of a CSV file") from None
    except OSError as error:
        raise InvalidImportFile(f"file {str(path)!r} cannot be opened: {error.strerror}") from None

    with handle:
        span = _RecordSpan()
        return _table_from_lines(_decoded_lines(handle, path, span), path, span)


class _RecordSpan:
    """The bytes read since the csv reader last returned a record, and the line they start on."""

    def __init__(self):
        self.first_line = 1
        self.bytes_read = 0

    def record_returned(self, next_line: int) -> None:
        self.first_line = next_line
        self.bytes_read = 0


def _decoded_lines(handle: BinaryIO, path: Path, span: _RecordSpan) -> Iterator[str]:
    """Yield each physical line decoded as UTF-8, checking its width, encoding and record size."""
    line_number = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        line_number += 1
        span.bytes_read += len(raw)
        if span.bytes_read > MAX_RECORD_BYTES:
            raise InvalidImportFile(
                f"the record starting on line {span.first_line} is longer than {MAX_RECORD_BYTES} bytes; "
                "a quote is not closed, or the row has far too many cells"
            )
        if line_number == 1:
            if raw.startswith(UTF16_BOMS):
                raise InvalidImportFile(
                    f"file {str(path)!r} is UTF-16, not UTF-8; save it as UTF-8 "
                    "(for example: iconv -f UTF-16 -t UTF-8)"
                )
            raw = raw.removeprefix(UTF8_BOM)
        if len(raw) > MAX_LINE_BYTES:
            raise InvalidImportFile(
                f"line {line_number} is longer than {MAX_LINE_BYTES} bytes; "
                "the file is not a customer export, or its line breaks are missing"
            )
        if b"\x00" in raw:
            raise InvalidImportFile(
                f"line {line_number} contains a NUL byte; the file is binary or not UTF-8 text"
            )
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidImportFile(
                f"line {line_number} is not UTF-8 (byte 0x{raw[error.start]:02x} at byte "
                f"{error.start + 1} of the line); save the file as UTF-8, for example with "
                "iconv -f WINDOWS-1252 -t UTF-8"
            ) from None


def _table_from_lines(lines: Iterator[str], path: Path, span: _RecordSpan) -> CsvTable:
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    records: list[CsvRecord] = []
    lines_before = 0

    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise InvalidImportFile(
                f"line {reader.line_num} is not valid CSV ({error}); "
                "the file is truncated or a quote is not closed"
            ) from None
        line_number = lines_before + 1
        lines_before = reader.line_num
        span.record_returned(lines_before + 1)

        if len(fields) > MAX_COLUMNS:
            raise InvalidImportFile(
                f"line {line_number} has {len(fields)} fields, more than the maximum of "
                f"{MAX_COLUMNS}; check that the file is comma-separated"
            )
        if not any(field.strip() for field in fields):
            continue

        if header is None:
            header = _header_from_fields(fields, line_number)
            continue

        if len(fields) != len(header):
            raise InvalidImportFile(
                f"line {line_number} has {len(fields)} fields but the header has {len(header)}; "
                "the file is truncated or ragged, so export it again"
            )
        cells = {name: value.strip() for name, value in zip(header, fields, strict=True) if name}
        records.append(CsvRecord(line_number, cells))

    if header is None:
        raise InvalidImportFile(f"file {str(path)!r} is empty; expected a header row and data rows")
    return CsvTable(header=[name for name in header if name], records=records)


def _header_from_fields(fields: list[str], line_number: int) -> list[str]:
    header = [field.strip() for field in fields]
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            continue
        if name in seen:
            raise InvalidImportFile(
                f"column {name!r} appears twice in the header on line {line_number} "
                f"(columns {seen[name]} and {position}); rename or remove one"
            )
        seen[name] = position
    return header

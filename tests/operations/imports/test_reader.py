import tracemalloc

import pytest

from billing.operations.errors import InvalidImportFile
from billing.operations.imports.reader import (
    MAX_COLUMNS,
    MAX_LINE_BYTES,
    MAX_RECORD_BYTES,
    csv_table_read,
)
from tests.operations.csv_files import write_text


def read_error(path) -> str:
    with pytest.raises(InvalidImportFile) as raised:
        csv_table_read(path)
    assert raised.value.code == "invalid_import_file"
    return str(raised.value)


class TestCsvTableRead:
    def test_header_and_records_with_line_numbers(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount\nC-1,10.00\nC-2,12.50\n")

        table = csv_table_read(path)

        assert table.header == ["id", "amount"]
        assert [record.line_number for record in table.records] == [2, 3]
        assert table.records[0].cells == {"id": "C-1", "amount": "10.00"}
        assert table.records[1].cells == {"id": "C-2", "amount": "12.50"}

    def test_byte_order_mark_is_dropped(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "\ufeffid,amount\nC-1,10.00\n")

        table = csv_table_read(path)

        assert table.header == ["id", "amount"]
        assert table.records[0].cells["id"] == "C-1"

    def test_blank_lines_and_blank_rows_are_skipped(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount\n\nC-1,10.00\n , \n\r\nC-2,1\n")

        table = csv_table_read(path)

        assert [record.line_number for record in table.records] == [3, 6]

    def test_cells_are_stripped_and_blank_cells_kept(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount,note\r\n  C-1 , ,\r\n")

        table = csv_table_read(path)

        assert table.records[0].cells == {"id": "C-1", "amount": "", "note": ""}

    def test_columns_with_blank_names_are_ignored(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,,amount,\nC-1,x,10,y\n")

        table = csv_table_read(path)

        assert table.header == ["id", "amount"]
        assert table.records[0].cells == {"id": "C-1", "amount": "10"}

    def test_quoted_line_break_keeps_start_line(self, tmp_path):
        path = write_text(tmp_path, "a.csv", 'id,note\nC-1,"two\nlines"\nC-2,x\n')

        table = csv_table_read(path)

        assert [record.line_number for record in table.records] == [2, 4]
        assert table.records[0].cells["note"] == "two\nlines"

    def test_last_line_without_line_break_is_read(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount\nC-1,10.00")

        assert csv_table_read(path).records[0].cells == {"id": "C-1", "amount": "10.00"}

    def test_header_only_gives_no_records(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount\n")

        assert csv_table_read(path).records == []

    def test_windows_1252_file_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,name\nC-1,Zoë\n", encoding="cp1252")

        assert read_error(path) == (
            "line 2 is not UTF-8 (byte 0xeb at byte 7 of the line); save the file as UTF-8, "
            "for example with iconv -f WINDOWS-1252 -t UTF-8"
        )

    def test_utf16_file_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "\ufeffid,name\nC-1,Zoë\n", encoding="utf-16-le")

        assert read_error(path) == (
            f"file {str(path)!r} is UTF-16, not UTF-8; save it as UTF-8 "
            "(for example: iconv -f UTF-16 -t UTF-8)"
        )

    def test_short_row_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount,currency\nC-1,10,USD\nC-2,10\nC-3,1,USD\n")

        assert read_error(path) == (
            "line 3 has 2 fields but the header has 3; the file is truncated or ragged, "
            "so export it again"
        )

    def test_long_row_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount\nC-1,10,USD\n")

        assert read_error(path) == (
            "line 2 has 3 fields but the header has 2; the file is truncated or ragged, "
            "so export it again"
        )

    def test_file_cut_inside_a_row_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount,currency\nC-1,10,USD\nC-2,1")

        assert read_error(path) == (
            "line 3 has 2 fields but the header has 3; the file is truncated or ragged, "
            "so export it again"
        )

    def test_file_cut_inside_quotes_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", 'id,note\nC-1,"an open quote\n')

        assert read_error(path) == (
            "line 2 is not valid CSV (unexpected end of data); "
            "the file is truncated or a quote is not closed"
        )

    def test_very_long_line_is_rejected(self, tmp_path):
        wide = "x" * (MAX_LINE_BYTES + 10)
        path = write_text(tmp_path, "a.csv", f"id,note\nC-1,{wide}\n")

        assert read_error(path) == (
            f"line 2 is longer than {MAX_LINE_BYTES} bytes; the file is not a customer export, "
            "or its line breaks are missing"
        )

    def test_row_with_too_many_fields_is_rejected(self, tmp_path):
        header = ",".join(f"c{number}" for number in range(MAX_COLUMNS + 1))
        path = write_text(tmp_path, "a.csv", f"{header}\n")

        assert read_error(path) == (
            f"line 1 has {MAX_COLUMNS + 1} fields, more than the maximum of {MAX_COLUMNS}; "
            "check that the file is comma-separated"
        )

    def test_million_column_row_is_rejected(self, tmp_path):
        path = tmp_path / "wide.csv"
        path.write_bytes(b"id,note\nC-1" + b",x" * 1_000_000 + b"\n")

        tracemalloc.start()
        try:
            message = read_error(path)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert message == (
            f"line 2 is longer than {MAX_LINE_BYTES} bytes; the file is not a customer export, "
            "or its line breaks are missing"
        )
        # The 2 MB row is never read whole: one line of MAX_LINE_BYTES at most.
        assert peak_bytes < 4 * MAX_LINE_BYTES

    def test_million_column_row_across_quoted_lines(self, tmp_path):
        # Each line stays under MAX_LINE_BYTES and ends inside a quoted cell,
        # so one record of a million cells has no long line.
        chunk = ",x" * 30_000 + ',"\n"'
        path = write_text(tmp_path, "a.csv", "id,note\nC-1" + chunk * 34 + "\n")

        tracemalloc.start()
        try:
            message = read_error(path)
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert message == (
            f"the record starting on line 2 is longer than {MAX_RECORD_BYTES} bytes; "
            "a quote is not closed, or the row has far too many cells"
        )
        # The csv module keeps an 8-byte list slot per cell of the record so far,
        # so the peak is a few times MAX_RECORD_BYTES; a million cells would need 8 MB.
        assert peak_bytes < 8 * MAX_RECORD_BYTES

    def test_multiline_records_reset_the_size_limit(self, tmp_path):
        address = "\n".join("x" * 1000 for _ in range(100))
        rows = "".join(f'C-{number},"{address}"\n' for number in range(10))
        path = write_text(tmp_path, "a.csv", "id,address\n" + rows)

        table = csv_table_read(path)

        assert len(address) < MAX_RECORD_BYTES < len(rows)
        assert [record.line_number for record in table.records] == [2 + 100 * number for number in range(10)]
        assert table.records[9].cells["address"] == address

    def test_nul_byte_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount\nC-1\x00,10\n")

        assert read_error(path) == "line 2 contains a NUL byte; the file is binary or not UTF-8 text"

    def test_empty_file_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "\n\n")

        assert read_error(path) == f"file {str(path)!r} is empty; expected a header row and data rows"

    def test_repeated_column_is_rejected(self, tmp_path):
        path = write_text(tmp_path, "a.csv", "id,amount,id\nC-1,1,2\n")

        assert read_error(path) == (
            "column 'id' appears twice in the header on line 1 (columns 1 and 3); rename or remove one"
        )

    def test_missing_file_is_rejected(self, tmp_path):
        path = tmp_path / "absent.csv"

        assert read_error(path) == f"file {str(path)!r} does not exist; check the path"

"""Reading the CSV files that spreadsheets and shops write: encoding, delimiter and rows.

Dutch Excel saves "CSV" in Windows-1252 with a semicolon, "CSV UTF-8" with a byte order mark,
and shops export UTF-8 with commas. A file does not state which, so both are detected from the bytes.
"""

import codecs
import csv
import io
import logging
import re
from dataclasses import dataclass

from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

# In order of preference when a header line contains as many of one as of another.
DELIMITERS = (",", ";", "\t", "|")
# Excel writes and reads a first line "sep=;" that names the delimiter; it is not a data row.
SEPARATOR_HINT = re.compile(r"^sep=(.)\r?\n?$")


class CsvFileError(ValueError):
    """A file that cannot be read as CSV; the message gives the reason and the fix."""


@dataclass(frozen=True)
class CsvLayout:
    """The encoding and delimiter a file was read with, and the number of cells in its header row."""

    encoding: str
    delimiter: str
    header_width: int


def decode_csv(data: bytes) -> tuple[str, str]:
    """Decode file bytes and return the text with the name of the encoding used.

    A byte order mark decides; otherwise strict UTF-8 is tried first, because Windows-1252 text
    with accents is almost never valid UTF-8. Windows-1252 leaves five byte values undefined, so a
    file containing them is read as Latin-1, which accepts every byte.
    """
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as error:
            raise CsvFileError(
                _("The file starts with a UTF-8 byte order mark but byte %(position)s is not UTF-8. Save it again as CSV UTF-8.")
                % {"position": error.start + len(codecs.BOM_UTF8)}
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise CsvFileError(_("The file starts with a UTF-16 byte order mark but is not valid UTF-16.")) from None

    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def detect_delimiter(header_line: str) -> str:
    """Return the delimiter that occurs most often outside quotes in the header line.

    The header is used because column names rarely contain a delimiter, while values (addresses,
    notes, amounts with a decimal comma) often do. A header with a single column gets a comma.
    """
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    for character in header_line:
        if character == '"':
            in_quotes = not in_quotes
        elif not in_quotes and character in counts:
            counts[character] += 1

    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def read_csv(data: bytes | str) -> tuple[list[str], list[list[str]], CsvLayout]:
    """Read CSV bytes into a header row and data rows; raise CsvFileError when that is impossible.

    Every record is returned, blank ones as empty lists padded like the others, so that the index
    of a row plus 2 is the row number a spreadsheet shows (the header is row 1). Rows shorter than
    the header are padded with empty cells. Rows longer than the header keep their extra cells and
    the header is padded with empty names up to the widest row. ``CsvLayout.header_width``
    distinguishes the two.
    """
    if isinstance(data, bytes):
        text, encoding = decode_csv(data)
    else:
        text, encoding = data.removeprefix("\ufeff"), "text"
    if not text.strip():
        raise CsvFileError(_("The file is empty. Export the contacts again, with a header row."))

    first_line, _newline, rest = text.partition("\n")
    hint = SEPARATOR_HINT.match(first_line + "\n")
    if hint:
        delimiter = hint.group(1)
        text = rest
    else:
        delimiter = detect_delimiter(first_line)

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = list(reader)
    except csv.Error as error:
        raise CsvFileError(
            _("Row %(row)s cannot be read as CSV: %(error)s. Check the quotes in that row.")
            % {"row": reader.line_num, "error": error}
        ) from None

    if not records or not any(cell.strip() for cell in records[0]):
        raise CsvFileError(_("The first row is empty. The first row must contain the column names."))

    headers = [cell.strip() for cell in records[0]]
    header_width = len(headers)
    width = max(len(record) for record in records)
    headers.extend([""] * (width - header_width))

    rows = records[1:]
    for row in rows:
        if len(row) < width:
            row.extend([""] * (width - len(row)))

    layout = CsvLayout(encoding=encoding, delimiter=delimiter, header_width=header_width)
    logger.info("read %s CSV rows, encoding %s, delimiter %r", len(rows), encoding, delimiter)
    return headers, rows, layout

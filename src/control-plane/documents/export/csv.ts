/**
 * The ledger as CSV (RFC 4180): comma-separated, CRLF, every field quoted, UTF-8 with a byte-order mark so that
 * spreadsheet programs read "Razón social" as written. Amounts are plain decimals with a dot ("1234.50").
 *
 * Formula injection: a spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return) as a formula,
 * and issuer names come from the portal — anyone who issues an invoice chooses them. Such text cells get a leading
 * apostrophe. Amount cells are numbers the database computed; one is written as it is only when it is a plain
 * decimal (a negative one starts with "-" and is still just a number), else it is treated as text.
 */
import { isDecimal } from '../decimal.ts';
import type { Cell, Ledger } from '../ledger.ts';

export const CSV_CONTENT_TYPE = 'text/csv; charset=utf-8';
const FORMULA_START = /^[=+\-@\t\r]/;

export function safeCsvText(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value;
}

function field(cell: Cell | string): string {
  const v = typeof cell === 'string' ? safeCsvText(cell) : cell.kind === 'amount' && isDecimal(cell.value) ? cell.value : safeCsvText(cell.value);
  return `"${v.replace(/"/g, '""')}"`;
}

export function ledgerToCsv(ledger: Ledger): Buffer {
  const lines = [ledger.headers.map(field).join(','), ...ledger.rows.map((r) => r.map(field).join(','))];
  return Buffer.from(`\uFEFF${lines.join('\r\n')}\r\n`, 'utf8');
}

/**
 * The ledger as an Excel workbook (exceljs: maintained, pure JavaScript, writes OOXML): one sheet "Comprobantes",
 * the header row bold and frozen, amount cells as numbers with the format "#,##0.00" (what an accountant sums), text
 * cells as text — never formulas: exceljs writes a string as a shared string, so a portal's "=HYPERLINK(…)" is shown,
 * not run — and a totals row from `ledger.totals`.
 *
 * Amounts are exact decimal strings everywhere else (the XML, the database, the CSV); a spreadsheet cell is an IEEE
 * double, which holds every amount of two decimals below 2^53 / 100 exactly enough to show it as written.
 */
import ExcelJS from 'exceljs';
import { isDecimal } from '../decimal.ts';
import type { Ledger } from '../ledger.ts';

export const XLSX_CONTENT_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const AMOUNT_FORMAT = '#,##0.00';

export async function ledgerToXlsx(ledger: Ledger): Promise<Buffer> {
  const book = new ExcelJS.Workbook();
  book.creator = 'SRI automation platform';
  const sheet = book.addWorksheet('Comprobantes', { views: [{ state: 'frozen', ySplit: 1 }] });
  sheet.addRow(ledger.headers).font = { bold: true };
  const amountCols = new Set<number>();
  for (const cells of ledger.rows) {
    const row = sheet.addRow(cells.map((c) => (c.kind === 'amount' && isDecimal(c.value) ? Number(c.value) : c.value)));
    cells.forEach((c, i) => {
      if (c.kind === 'amount' && isDecimal(c.value)) {
        amountCols.add(i);
        row.getCell(i + 1).numFmt = AMOUNT_FORMAT;
      }
    });
  }
  if (ledger.rows.length) {
    const totals = sheet.addRow(ledger.totals.map((t, i) => (i === 0 ? 'Total' : t !== null && isDecimal(t) ? Number(t) : null)));
    totals.font = { bold: true };
    for (const i of amountCols) totals.getCell(i + 1).numFmt = AMOUNT_FORMAT;
  }
  ledger.headers.forEach((h, i) => { sheet.getColumn(i + 1).width = Math.min(48, Math.max(12, h.length + 2)); });
  return Buffer.from(await book.xlsx.writeBuffer());
}

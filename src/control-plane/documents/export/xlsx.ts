/**
 * The ledger as an Excel workbook. Not available yet: the platform has no XLSX library installed, and writing the
 * OOXML format by hand is not something to maintain here. The plan is `exceljs` (maintained, streams, no native
 * code): this file becomes `ledgerToXlsx` writing one sheet "Comprobantes" with the headers bold, amount cells as
 * numbers with format "#,##0.00", a totals row from `ledger.totals`, and the header row frozen — nothing else
 * changes (the route already answers format=xlsx through this function).
 */
import { SriError } from '../../../shared/errors.ts';
import type { Ledger } from '../ledger.ts';

export const XLSX_CONTENT_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

export function ledgerToXlsx(_ledger: Ledger): Promise<Buffer> {
  return Promise.reject(new SriError('EXPORT_FORMAT_UNAVAILABLE', 'XLSX export needs a spreadsheet library this installation does not have yet; export format=csv, which spreadsheet programs open as well.'));
}

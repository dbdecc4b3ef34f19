/**
 * The documents as an accountant's ledger: one row per document with the columns a purchases register
 * (registro de compras) needs — date, type, document number, issuer RUC and name, the subtotal of each VAT rate
 * present, VAT, total and withholdings — headed in Spanish. Format-neutral: csv.ts and xlsx.ts write it.
 */
import type { SriDocumentType, SriTax } from '../../shared/sri-document.ts';
import type { DocumentWithBody } from '../db/queries/documents.ts';
import { addDecimals } from './decimal.ts';

export const TIPO_LABELS: Record<SriDocumentType, string> = {
  factura: 'Factura',
  notaCredito: 'Nota de crédito',
  notaDebito: 'Nota de débito',
  retencion: 'Comprobante de retención',
  liquidacionCompra: 'Liquidación de compra',
  guiaRemision: 'Guía de remisión',
};

/** IVA is tax `codigo` 2; its `codigoPorcentaje` names the rate (SRI technical sheet, table 17). */
const IVA = '2';
const RATE_OF_CODE: Record<string, string> = { '0': '0', '2': '12', '3': '14', '4': '15', '5': '5', '10': '13' };
/** Bases that bear no VAT and are no rate: reported in columns of their own. */
const SPECIAL_BASES: Record<string, string> = { '6': 'Subtotal no objeto de IVA', '7': 'Subtotal exento de IVA' };

/** The column a tax's base goes to: "0", "12", "15"… for a rate, or a special base's header. */
function baseColumnOf(t: SriTax): string {
  const special = SPECIAL_BASES[t.codigoPorcentaje];
  if (special) return special;
  // The rate the document states wins over the code's usual one (8: "IVA diferenciado" has no fixed rate).
  const tarifa = t.tarifa ? String(Number(t.tarifa)) : undefined;
  return tarifa ?? RATE_OF_CODE[t.codigoPorcentaje] ?? `código ${t.codigoPorcentaje}`;
}
const headerOf = (col: string) => (/^\d+(\.\d+)?$/.test(col) ? `Subtotal ${col} %` : col.startsWith('Subtotal') ? col : `Subtotal IVA ${col}`);

export type Cell = { kind: 'text'; value: string } | { kind: 'amount'; value: string };
export interface Ledger {
  headers: string[];
  rows: Cell[][];
  /** The sum of each amount column (null for text columns), for a totals line where the format has one. */
  totals: (string | null)[];
}

/**
 * The ledger of `docs`. The 0 % column is always there (most purchases have a 0 % part); other rates and the
 * special bases appear when some document of the set has them, rates in ascending order.
 */
export function buildLedger(docs: readonly DocumentWithBody[]): Ledger {
  const perDoc = docs.map((d) => {
    const bases = new Map<string, string>();
    for (const t of d.document.totales.impuestos) {
      if (t.codigo !== IVA) continue;
      const col = baseColumnOf(t);
      bases.set(col, addDecimals(bases.get(col) ?? '0', t.baseImponible));
    }
    return bases;
  });
  const cols = new Set<string>(['0']);
  for (const b of perDoc) for (const c of b.keys()) cols.add(c);
  const rateCols = [...cols].filter((c) => /^\d/.test(c)).sort((x, y) => Number(x) - Number(y) || x.localeCompare(y));
  const baseCols = [...rateCols, ...[...cols].filter((c) => !/^\d/.test(c)).sort()];

  const headers = ['Fecha de emisión', 'Tipo de comprobante', 'Serie-Secuencial', 'RUC emisor', 'Razón social emisor',
    'Clave de acceso', 'Número de autorización', ...baseCols.map(headerOf), 'Descuento', 'IVA', 'Total', 'Retenciones'];
  const text = (value: string): Cell => ({ kind: 'text', value });
  const amount = (value: string): Cell => ({ kind: 'amount', value });
  const rows = docs.map((d, i) => [
    text(d.fecha_emision), text(TIPO_LABELS[d.tipo]), text(`${d.serie}-${d.secuencial.padStart(9, '0')}`), text(d.emisor_ruc),
    text(d.emisor_razon_social), text(d.clave_acceso), text(d.numero_autorizacion ?? ''),
    ...baseCols.map((c) => amount(perDoc[i]!.get(c) ?? '0.00')),
    amount(d.descuento), amount(d.iva), amount(d.importe_total), amount(d.retenido),
  ]);
  const totals = headers.map((_, c) => (rows.length === 0 || rows[0]![c]!.kind !== 'amount'
    ? null
    : rows.reduce((sum, r) => addDecimals(sum, r[c]!.value), '0')));
  if (rows.length === 0) for (let c = 7; c < headers.length; c++) totals[c] = '0.00';
  return { headers, rows, totals };
}

/**
 * The SRI's 49-digit access key (clave de acceso), as the technical sheet of offline electronic invoicing defines it:
 *
 * | digits | field |
 * | --- | --- |
 * | 1–8 | date of issue, ddmmyyyy |
 * | 9–10 | document type (01 factura, 03 liquidación de compra, 04 nota de crédito, 05 nota de débito, 06 guía de remisión, 07 comprobante de retención) |
 * | 11–23 | the issuer's RUC |
 * | 24 | environment (1 pruebas, 2 producción) |
 * | 25–30 | series: establishment (3) and point of issue (3) |
 * | 31–39 | sequence number |
 * | 40–47 | numeric code chosen by the issuer |
 * | 48 | type of issue (1 normal) |
 * | 49 | check digit, modulo 11 over digits 1–48 |
 */

export interface AccessKeyFields {
  /** ddmmyyyy */
  readonly fecha: string;
  readonly codDoc: string;
  readonly ruc: string;
  readonly ambiente: string;
  /** estab + ptoEmi, six digits */
  readonly serie: string;
  readonly secuencial: string;
  readonly codigoNumerico: string;
  readonly tipoEmision: string;
  readonly digitoVerificador: string;
}

/**
 * Modulo 11 with weights 2..7 from the rightmost digit leftwards: 11 − (sum mod 11), where 11 becomes 0 and 10
 * becomes 1 (the SRI's rule).
 */
export function modulo11(digits: string): number {
  let sum = 0;
  let weight = 2;
  for (let i = digits.length - 1; i >= 0; i--) {
    sum += (digits.charCodeAt(i) - 48) * weight;
    weight = weight === 7 ? 2 : weight + 1;
  }
  const d = 11 - (sum % 11);
  return d === 11 ? 0 : d === 10 ? 1 : d;
}

/** Whether `key` is 49 digits whose last is the modulo-11 check digit of the first 48. */
export function accessKeyValid(key: string): boolean {
  return /^\d{49}$/.test(key) && modulo11(key.slice(0, 48)) === key.charCodeAt(48) - 48;
}

/** Splits a 49-digit key into its fields; null when it is not 49 digits. */
export function accessKeyFields(key: string): AccessKeyFields | null {
  if (!/^\d{49}$/.test(key)) return null;
  return {
    fecha: key.slice(0, 8), codDoc: key.slice(8, 10), ruc: key.slice(10, 23), ambiente: key.slice(23, 24),
    serie: key.slice(24, 30), secuencial: key.slice(30, 39), codigoNumerico: key.slice(39, 47),
    tipoEmision: key.slice(47, 48), digitoVerificador: key.slice(48, 49),
  };
}

/** Builds a key from its fields (all but the check digit) and appends the check digit. */
export function buildAccessKey(f: Omit<AccessKeyFields, 'digitoVerificador'>): string {
  const body = `${f.fecha}${f.codDoc}${f.ruc}${f.ambiente}${f.serie}${f.secuencial}${f.codigoNumerico}${f.tipoEmision}`;
  if (!/^\d{48}$/.test(body)) throw new Error(`access key fields do not make 48 digits: ${body}`);
  return body + String(modulo11(body));
}

/** The SRI's document type codes (codDoc) and the parser's names for them. */
export const COD_DOC = {
  '01': 'factura',
  '03': 'liquidacionCompra',
  '04': 'notaCredito',
  '05': 'notaDebito',
  '06': 'guiaRemision',
  '07': 'retencion',
} as const;
export type CodDoc = keyof typeof COD_DOC;
export type SriTipo = (typeof COD_DOC)[CodDoc];
export const COD_DOC_OF: Readonly<Record<SriTipo, CodDoc>> = Object.freeze(
  Object.fromEntries(Object.entries(COD_DOC).map(([k, v]) => [v, k])) as Record<SriTipo, CodDoc>,
);

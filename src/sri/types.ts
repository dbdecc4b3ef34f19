/**
 * The parser's output (issue 16, "Parsers"): one object per SRI document, whatever its type and version. Amounts are
 * decimal strings exactly as the XML writes them; dates are ISO 8601. The control plane's documents table, the
 * exports and the worker's parsed data all take this shape (docs/sri.md "Parser output").
 */
import type { SriTipo } from './access-key.ts';

export type { SriTipo };

/** A check that failed; the document is still returned. Codes are listed in docs/sri.md. */
export interface SriProblema {
  readonly codigo: SriProblemaCodigo;
  readonly mensaje: string;
}

export type SriProblemaCodigo =
  | 'CLAVE_ACCESO_FORMATO'
  | 'CLAVE_ACCESO_DIGITO'
  | 'CLAVE_ACCESO_FECHA'
  | 'CLAVE_ACCESO_TIPO'
  | 'CLAVE_ACCESO_RUC'
  | 'CLAVE_ACCESO_AMBIENTE'
  | 'CLAVE_ACCESO_SERIE'
  | 'CLAVE_ACCESO_SECUENCIAL'
  | 'AUTORIZACION_CLAVE'
  | 'NO_AUTORIZADO'
  | 'TIPO_INCONSISTENTE'
  | 'VERSION_DESCONOCIDA'
  | 'CAMPO_FALTANTE'
  | 'FECHA_INVALIDA'
  | 'IMPORTE_INVALIDO'
  | 'LINEA_IMPORTE'
  | 'TOTALES_LINEAS'
  | 'TOTALES_IMPUESTOS'
  | 'RETENCION_VALOR';

export interface SriImpuesto {
  /** 2 IVA, 3 ICE, 5 IRBPNR. */
  readonly codigo: string;
  readonly codigoPorcentaje: string;
  readonly tarifa?: string;
  readonly baseImponible: string;
  readonly valor: string;
}

export interface SriDetalle {
  /** codigoPrincipal (codigoInterno on a nota de crédito). */
  readonly codigoPrincipal?: string;
  readonly descripcion: string;
  readonly cantidad: string;
  readonly precioUnitario: string;
  readonly descuento: string;
  readonly precioTotalSinImpuesto: string;
}

export interface SriDocSustento {
  /** 01 factura, 03 liquidación de compra… (codDocSustento). */
  readonly codDocSustento: string;
  /** As written: fifteen digits, establishment, point of issue and sequence (numDocSustento). */
  readonly numDocSustento: string;
  readonly fechaEmisionDocSustento?: string;
}

export interface SriRetencion {
  /** 1 renta, 2 IVA, 6 ISD. */
  readonly codigo: string;
  readonly codigoRetencion: string;
  readonly baseImponible: string;
  readonly porcentajeRetener: string;
  readonly valorRetenido: string;
  readonly docSustento?: SriDocSustento;
}

export interface SriDocument {
  readonly claveAcceso: string;
  /** 49 digits with the right modulo-11 check digit. Whether its fields agree with the document is in `problemas`. */
  readonly claveAccesoValida: boolean;
  readonly tipo: SriTipo;
  /** The root element's `version` attribute, e.g. "1.1.0". */
  readonly version: string;
  /** infoTributaria's ambiente as written: "1" pruebas, "2" producción. */
  readonly ambiente: string;
  /** From the `<autorizacion>` wrapper, when there is one (e.g. "AUTORIZADO"). */
  readonly estado?: string;
  readonly numeroAutorizacion?: string;
  /** ISO 8601 with offset. */
  readonly fechaAutorizacion?: string;
  readonly emisor: { readonly ruc: string; readonly razonSocial: string; readonly nombreComercial?: string };
  /** The buyer (factura, notas), the supplier (liquidación de compra) or the withheld party (retención). */
  readonly receptor: { readonly tipoIdentificacion: string; readonly identificacion: string; readonly razonSocial: string };
  /** Establishment and point of issue, "001-001". */
  readonly serie: string;
  readonly secuencial: string;
  /** YYYY-MM-DD */
  readonly fechaEmision: string;
  /** As written ("DOLAR" when the document has no moneda, the SRI's default). */
  readonly moneda: string;
  readonly totales: {
    readonly sinImpuestos: string;
    readonly descuento: string;
    readonly impuestos: readonly SriImpuesto[];
    /** factura only, when written. */
    readonly propina?: string;
    /** importeTotal (factura, liquidación), valorModificacion (nota de crédito), valorTotal (nota de débito), the sum withheld (retención). */
    readonly importeTotal: string;
  };
  readonly detalles: readonly SriDetalle[];
  /** retención only. */
  readonly retenciones?: readonly SriRetencion[];
  /** The document a nota de crédito or débito modifies. */
  readonly docModificado?: { readonly codDoc: string; readonly numero: string; readonly fechaEmision?: string };
  /** campoAdicional nombre → value. */
  readonly infoAdicional?: Readonly<Record<string, string>>;
  readonly problemas: readonly SriProblema[];
}

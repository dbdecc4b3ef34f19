import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { accessKeyValid, buildAccessKey, modulo11 } from '../../src/sri/access-key.ts';
import { authorisationXml, sriDataset, SRI_DEMO_RECEPTOR } from '../../src/sri/generate.ts';
import { parseSriDocument, type SriDocument } from '../../src/sri/parse.ts';
import { soapAuthorisation } from '../../src/embedded/sri-portal/files.ts';
import { isSriError } from '../../src/shared/errors.ts';

const RUC = '1790012345001';
const KEY = buildAccessKey({ fecha: '05032026', codDoc: '01', ruc: RUC, ambiente: '2', serie: '001002', secuencial: '000000123', codigoNumerico: '12345678', tipoEmision: '1' });

/** A hand-written factura 1.1.0; `edit` rewrites parts of it for each case. */
function factura(edit: (xml: string) => string = (x) => x): string {
  return edit(`<?xml version="1.0" encoding="UTF-8"?>
<factura id="comprobante" version="1.1.0">
  <infoTributaria>
    <ambiente>2</ambiente><tipoEmision>1</tipoEmision>
    <razonSocial>A &amp; B COMERCIAL S.A.</razonSocial><nombreComercial>AYB</nombreComercial>
    <ruc>${RUC}</ruc><claveAcceso>${KEY}</claveAcceso><codDoc>01</codDoc>
    <estab>001</estab><ptoEmi>002</ptoEmi><secuencial>000000123</secuencial><dirMatriz>Quito</dirMatriz>
  </infoTributaria>
  <infoFactura>
    <fechaEmision>05/03/2026</fechaEmision>
    <obligadoContabilidad>SI</obligadoContabilidad>
    <tipoIdentificacionComprador>04</tipoIdentificacionComprador>
    <razonSocialComprador>ORGANIZACION DEMO S.A.</razonSocialComprador>
    <identificacionComprador>1792146739001</identificacionComprador>
    <totalSinImpuestos>105.10</totalSinImpuestos>
    <totalDescuento>1.00</totalDescuento>
    <totalConImpuestos>
      <totalImpuesto><codigo>2</codigo><codigoPorcentaje>4</codigoPorcentaje><baseImponible>100.00</baseImponible><tarifa>15</tarifa><valor>15.00</valor></totalImpuesto>
      <totalImpuesto><codigo>2</codigo><codigoPorcentaje>0</codigoPorcentaje><baseImponible>5.10</baseImponible><valor>0.00</valor></totalImpuesto>
    </totalConImpuestos>
    <propina>0.00</propina>
    <importeTotal>120.10</importeTotal>
    <moneda>DOLAR</moneda>
    <pagos><pago><formaPago>01</formaPago><total>120.10</total></pago></pagos>
  </infoFactura>
  <detalles>
    <detalle><codigoPrincipal>A1</codigoPrincipal><descripcion>Servicio</descripcion><cantidad>2.500000</cantidad><precioUnitario>40.400000</precioUnitario><descuento>1.00</descuento><precioTotalSinImpuesto>100.00</precioTotalSinImpuesto>
      <impuestos><impuesto><codigo>2</codigo><codigoPorcentaje>4</codigoPorcentaje><tarifa>15</tarifa><baseImponible>100.00</baseImponible><valor>15.00</valor></impuesto></impuestos></detalle>
    <detalle><descripcion>Leche</descripcion><cantidad>6</cantidad><precioUnitario>0.85</precioUnitario><descuento>0</descuento><precioTotalSinImpuesto>5.10</precioTotalSinImpuesto></detalle>
  </detalles>
  <infoAdicional><campoAdicional nombre="Email">pagos@ayb.example.ec</campoAdicional><campoAdicional nombre="Dirección">Av. 6 de Diciembre</campoAdicional></infoAdicional>
</factura>`);
}

const codes = (d: SriDocument) => d.problemas.map((p) => p.codigo);

describe('SRI access keys', () => {
  it('computes the modulo-11 check digit, 11 → 0 and 10 → 1', () => {
    assert.equal(KEY.length, 49);
    assert.ok(accessKeyValid(KEY));
    assert.equal(modulo11('41261533'), 6);
    // A key as the SRI's documentation shows it.
    assert.ok(accessKeyValid('2110201101179214673900110020010000000011234567813')); // 3·2+3·3+5·4+1·5+6·6+2·7+1·2+4·3 = 104; 11 − 104 mod 11 = 6
    assert.equal(modulo11('0'), 0); // sum 0: 11 − 0 = 11 → 0
    assert.equal(modulo11('5'), 1); // 10: 11 − 10 = 1
    assert.equal(modulo11('3'), 5);
    assert.equal(modulo11('1'), 9);
    assert.equal(modulo11('7'), 8); // 14 mod 11 = 3
    assert.equal(modulo11('51'), 5); // 1·2 + 5·3 = 17, 17 mod 11 = 6, 11 − 6 = 5
  });
});

describe('parseSriDocument', () => {
  it('reads every document the generator makes, of every type and version, with no problem and the same totals', () => {
    const all = sriDataset();
    const kinds = new Set<string>();
    for (const d of all) {
      const p = parseSriDocument(d.xml, `${d.claveAcceso}.xml`);
      kinds.add(`${p.tipo} ${p.version}`);
      assert.deepEqual(p.problemas, [], `${d.claveAcceso} (${d.tipo} ${d.version})`);
      assert.equal(p.claveAcceso, d.claveAcceso);
      assert.ok(p.claveAccesoValida);
      assert.equal(p.totales.importeTotal, d.importeTotal);
      assert.equal(p.fechaEmision, d.fechaEmision);
      assert.equal(p.receptor.identificacion, SRI_DEMO_RECEPTOR.ruc);
      const wrapped = parseSriDocument(authorisationXml(d), 'w.xml');
      assert.deepEqual(wrapped, { ...p, estado: 'AUTORIZADO', numeroAutorizacion: d.numeroAutorizacion, fechaAutorizacion: d.fechaAutorizacion, problemas: [] });
    }
    assert.deepEqual([...kinds].sort(), [
      'factura 1.0.0', 'factura 1.1.0', 'liquidacionCompra 1.1.0', 'notaCredito 1.1.0', 'notaDebito 1.0.0', 'retencion 1.0.0', 'retencion 2.0.0',
    ]);
  });

  it('gives the issue\'s shape with amounts exactly as written and ISO dates', () => {
    const d = parseSriDocument(factura(), 'f.xml');
    assert.deepEqual(d, {
      claveAcceso: KEY, claveAccesoValida: true, tipo: 'factura', version: '1.1.0', ambiente: '2',
      emisor: { ruc: RUC, razonSocial: 'A & B COMERCIAL S.A.', nombreComercial: 'AYB' },
      receptor: { tipoIdentificacion: '04', identificacion: '1792146739001', razonSocial: 'ORGANIZACION DEMO S.A.' },
      serie: '001-002', secuencial: '000000123', fechaEmision: '2026-03-05', moneda: 'DOLAR',
      totales: {
        sinImpuestos: '105.10', descuento: '1.00',
        impuestos: [
          { codigo: '2', codigoPorcentaje: '4', tarifa: '15', baseImponible: '100.00', valor: '15.00' },
          { codigo: '2', codigoPorcentaje: '0', baseImponible: '5.10', valor: '0.00' },
        ],
        propina: '0.00', importeTotal: '120.10',
      },
      detalles: [
        { codigoPrincipal: 'A1', descripcion: 'Servicio', cantidad: '2.500000', precioUnitario: '40.400000', descuento: '1.00', precioTotalSinImpuesto: '100.00' },
        { descripcion: 'Leche', cantidad: '6', precioUnitario: '0.85', descuento: '0', precioTotalSinImpuesto: '5.10' },
      ],
      infoAdicional: { Email: 'pagos@ayb.example.ec', Dirección: 'Av. 6 de Diciembre' },
      problemas: [],
    });
  });

  it('reads the <autorizacion> wrapper with the document as CDATA, as escaped text, and inside the SOAP answer', () => {
    const bare = parseSriDocument(factura());
    const wrapper = (inner: string, fecha = '2026-03-05T10:15:30-05:00') => `<?xml version="1.0" encoding="UTF-8"?>
<autorizacion><estado>AUTORIZADO</estado><numeroAutorizacion>${KEY}</numeroAutorizacion>
<fechaAutorizacion>${fecha}</fechaAutorizacion><ambiente>PRODUCCIÓN</ambiente>
<comprobante>${inner}</comprobante><mensajes/></autorizacion>`;
    const expected = { ...bare, estado: 'AUTORIZADO', numeroAutorizacion: KEY, fechaAutorizacion: '2026-03-05T10:15:30-05:00' };
    assert.deepEqual(parseSriDocument(wrapper(`<![CDATA[${factura()}]]>`)), expected);
    const escaped = factura().replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    assert.deepEqual(parseSriDocument(wrapper(escaped)), expected);
    // Older answers write the date as dd/mm/yyyy hh:mm:ss, Ecuador's time.
    assert.equal(parseSriDocument(wrapper(`<![CDATA[${factura()}]]>`, '05/03/2026 10:15:30')).fechaAutorizacion, '2026-03-05T10:15:30-05:00');
    const doc = sriDataset()[3]!;
    const soap = parseSriDocument(soapAuthorisation(doc.claveAcceso, doc), 'soap.xml');
    assert.equal(soap.claveAcceso, doc.claveAcceso);
    assert.equal(soap.estado, 'AUTORIZADO');
    // Several attempts in one answer: the authorised one counts.
    const attempts = soapAuthorisation(doc.claveAcceso, doc).replace('<autorizaciones>',
      `<autorizaciones><autorizacion><estado>NO AUTORIZADO</estado><fechaAutorizacion>2026-01-01T00:00:00-05:00</fechaAutorizacion><mensajes><mensaje><identificador>43</identificador></mensaje></mensajes></autorizacion>`);
    assert.deepEqual(parseSriDocument(attempts), soap);
    const rejected = parseSriDocument(wrapper(`<![CDATA[${factura()}]]>`).replace('AUTORIZADO', 'NO AUTORIZADO'));
    assert.deepEqual(codes(rejected), ['NO_AUTORIZADO']);
  });

  it('reads a comprobante de retención 2.0.0: withholdings under their supporting document, the total withheld', () => {
    const key = buildAccessKey({ fecha: '15042026', codDoc: '07', ruc: RUC, ambiente: '1', serie: '001001', secuencial: '000000077', codigoNumerico: '00000001', tipoEmision: '1' });
    const xml = (valorIva: string) => `<comprobanteRetencion id="comprobante" version="2.0.0">
  <infoTributaria><ambiente>1</ambiente><tipoEmision>1</tipoEmision><razonSocial>CLIENTE GRANDE S.A.</razonSocial><ruc>${RUC}</ruc>
    <claveAcceso>${key}</claveAcceso><codDoc>07</codDoc><estab>001</estab><ptoEmi>001</ptoEmi><secuencial>000000077</secuencial><dirMatriz>Quito</dirMatriz></infoTributaria>
  <infoCompRetencion><fechaEmision>15/04/2026</fechaEmision><obligadoContabilidad>SI</obligadoContabilidad>
    <tipoIdentificacionSujetoRetenido>04</tipoIdentificacionSujetoRetenido><parteRel>NO</parteRel>
    <razonSocialSujetoRetenido>ORGANIZACION DEMO S.A.</razonSocialSujetoRetenido><identificacionSujetoRetenido>1792146739001</identificacionSujetoRetenido>
    <periodoFiscal>04/2026</periodoFiscal></infoCompRetencion>
  <docsSustento><docSustento><codSustento>01</codSustento><codDocSustento>01</codDocSustento><numDocSustento>001001000004567</numDocSustento>
    <fechaEmisionDocSustento>10/04/2026</fechaEmisionDocSustento><pagoLocExt>01</pagoLocExt><totalSinImpuestos>1000.00</totalSinImpuestos><importeTotal>1150.00</importeTotal>
    <impuestosDocSustento><impuestoDocSustento><codImpuestoDocSustento>2</codImpuestoDocSustento><codigoPorcentaje>4</codigoPorcentaje><baseImponible>1000.00</baseImponible><tarifa>15</tarifa><valorImpuesto>150.00</valorImpuesto></impuestoDocSustento></impuestosDocSustento>
    <retenciones>
      <retencion><codigo>1</codigo><codigoRetencion>312</codigoRetencion><baseImponible>1000.00</baseImponible><porcentajeRetener>1.75</porcentajeRetener><valorRetenido>17.50</valorRetenido></retencion>
      <retencion><codigo>2</codigo><codigoRetencion>10</codigoRetencion><baseImponible>150.00</baseImponible><porcentajeRetener>20</porcentajeRetener><valorRetenido>${valorIva}</valorRetenido></retencion>
    </retenciones></docSustento></docsSustento>
</comprobanteRetencion>`;
    const d = parseSriDocument(xml('30.00'));
    assert.equal(d.tipo, 'retencion');
    assert.equal(d.version, '2.0.0');
    assert.equal(d.ambiente, '1');
    assert.deepEqual(d.problemas, []);
    assert.equal(d.totales.importeTotal, '47.50');
    assert.deepEqual(d.detalles, []);
    const sustento = { codDocSustento: '01', numDocSustento: '001001000004567', fechaEmisionDocSustento: '2026-04-10' };
    assert.deepEqual(d.retenciones, [
      { codigo: '1', codigoRetencion: '312', baseImponible: '1000.00', porcentajeRetener: '1.75', valorRetenido: '17.50', docSustento: sustento },
      { codigo: '2', codigoRetencion: '10', baseImponible: '150.00', porcentajeRetener: '20', valorRetenido: '30.00', docSustento: sustento },
    ]);
    assert.deepEqual(d.receptor, { tipoIdentificacion: '04', identificacion: '1792146739001', razonSocial: 'ORGANIZACION DEMO S.A.' });
    assert.deepEqual(codes(parseSriDocument(xml('31.00'))), ['RETENCION_VALOR']);
  });

  it('does without optional blocks: no nombreComercial, moneda, propina, pagos, codes or infoAdicional', () => {
    const d = parseSriDocument(factura((x) => x
      .replace('<nombreComercial>AYB</nombreComercial>', '')
      .replace('<moneda>DOLAR</moneda>', '')
      .replace('<propina>0.00</propina>', '')
      .replace(/<pagos>.*<\/pagos>/, '')
      .replace('<codigoPrincipal>A1</codigoPrincipal>', '')
      .replace(/<infoAdicional>.*<\/infoAdicional>/, '')));
    assert.deepEqual(d.problemas, []);
    assert.equal(d.moneda, 'DOLAR', 'the SRI\'s default');
    assert.deepEqual(d.emisor, { ruc: RUC, razonSocial: 'A & B COMERCIAL S.A.' });
    assert.ok(!('infoAdicional' in d));
    assert.ok(!('propina' in d.totales));
    assert.ok(!('codigoPrincipal' in d.detalles[0]!));
  });

  it('reports a wrong check digit and access-key fields that disagree with the document, without throwing', () => {
    const wrongDigit = KEY.slice(0, 48) + String((Number(KEY[48]) + 1) % 10);
    const d = parseSriDocument(factura((x) => x.replace(`<claveAcceso>${KEY}`, `<claveAcceso>${wrongDigit}`)));
    assert.equal(d.claveAccesoValida, false);
    assert.deepEqual(codes(d), ['CLAVE_ACCESO_DIGITO']);
    const other = parseSriDocument(factura((x) => x
      .replace(`<ruc>${RUC}</ruc>`, '<ruc>0990000000001</ruc>')
      .replace('<fechaEmision>05/03/2026', '<fechaEmision>06/03/2026')
      .replace('<secuencial>000000123', '<secuencial>000000124')));
    assert.equal(other.claveAccesoValida, true);
    assert.deepEqual(codes(other).sort(), ['CLAVE_ACCESO_FECHA', 'CLAVE_ACCESO_RUC', 'CLAVE_ACCESO_SECUENCIAL']);
    assert.deepEqual(codes(parseSriDocument(factura((x) => x.replace(`<claveAcceso>${KEY}`, '<claveAcceso>123')))), ['CLAVE_ACCESO_FORMATO']);
  });

  it('keeps a foreign currency as written', () => {
    const d = parseSriDocument(factura((x) => x.replace('<moneda>DOLAR</moneda>', '<moneda>EURO</moneda>')));
    assert.equal(d.moneda, 'EURO');
    assert.deepEqual(d.problemas, []);
  });

  it('reports totals that do not add up beyond one cent, and accepts a one-cent difference', () => {
    assert.deepEqual(codes(parseSriDocument(factura((x) => x.replace('<totalSinImpuestos>105.10', '<totalSinImpuestos>105.11')))), [], 'one cent off is within tolerance');
    const lines = parseSriDocument(factura((x) => x.replace('<precioTotalSinImpuesto>5.10', '<precioTotalSinImpuesto>6.10')));
    assert.deepEqual(codes(lines), ['LINEA_IMPORTE', 'TOTALES_LINEAS']);
    const total = parseSriDocument(factura((x) => x.replace('<importeTotal>120.10', '<importeTotal>121.10')));
    assert.deepEqual(codes(total), ['TOTALES_IMPUESTOS']);
    assert.match(total.problemas[0]!.mensaje, /120\.10.*121\.10/);
  });

  it('reports an unknown version and a missing required field, and still reads the rest', () => {
    const d = parseSriDocument(factura((x) => x.replace('version="1.1.0"', 'version="9.9.9"').replace(/<razonSocialComprador>[^<]*<\/razonSocialComprador>/, '')));
    assert.deepEqual(codes(d), ['VERSION_DESCONOCIDA', 'CAMPO_FALTANTE']);
    assert.equal(d.version, '9.9.9');
    assert.equal(d.receptor.razonSocial, '');
    assert.equal(d.totales.importeTotal, '120.10');
  });

  it('reads a nota de débito\'s reasons as lines and the document it modifies', () => {
    const nd = sriDataset().find((x) => x.tipo === 'notaDebito')!;
    const d = parseSriDocument(nd.xml);
    assert.ok(d.detalles.length >= 1);
    assert.equal(d.detalles[0]!.cantidad, '1');
    assert.equal(d.docModificado?.codDoc, '01');
    assert.match(d.docModificado?.numero ?? '', /^\d{3}-\d{3}-\d{9}$/);
  });

  it('never expands DOCTYPE entities', () => {
    const bomb = `<?xml version="1.0"?><!DOCTYPE factura [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>`;
    const d = parseSriDocument(factura((x) => x.replace('<?xml version="1.0" encoding="UTF-8"?>', bomb).replace('<dirMatriz>Quito', '<dirMatriz>&c;')));
    assert.equal(d.emisor.razonSocial, 'A & B COMERCIAL S.A.', 'predefined entities are decoded');
    assert.ok(!JSON.stringify(d).includes('aaaaaaaaaa'));
  });

  it('throws SRI_XML_INVALID naming the file for malformed XML or no SRI document, never another error', () => {
    const cases: [string, RegExp][] = [
      ['<factura><infoTributaria></factura>', /^broken\.xml: not well-formed XML at line 1, column \d+/],
      ['', /^broken\.xml: /],
      ['not xml at all', /^broken\.xml: /],
      ['<html><body/></html>', /^broken\.xml: not an SRI document: root element <html>/],
      ['<autorizacion><estado>RECHAZADA</estado></autorizacion>', /^broken\.xml: <autorizacion> holds no <comprobante>/],
      ['<autorizacion><comprobante><![CDATA[<factura><x></factura>]]></comprobante></autorizacion>', /^broken\.xml <comprobante>: not well-formed/],
      [soapAuthorisation('1'.repeat(49), undefined), /^broken\.xml: the authorisation service's answer holds no <autorizacion>/],
    ];
    for (const [xml, message] of cases) {
      assert.throws(() => parseSriDocument(xml, 'broken.xml'), (e: unknown) => {
        assert.ok(isSriError(e), `an SriError for ${JSON.stringify(xml)}`);
        assert.equal(e.code, 'SRI_XML_INVALID');
        assert.match(e.message, message);
        return true;
      });
    }
  });
});

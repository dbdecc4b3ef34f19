/**
 * Flows to start from. The demo template is the flow `sri demo` runs (src/cli/demo.ts demoFlowSteps: log in to the
 * demo portal, wait for the invoices, a screenshot, the PDF, the invoice table): the app cannot import the CLI
 * (eslint boundaries), so the steps are written here too, with the portal's address taken from the demo provider's
 * allowed hosts. The password is the session credential `portalPassword` the providers page stores when connecting.
 */
import type { ApiStep } from './steps.ts';

export const DEMO_TEMPLATE_ID = 'demo';

export function demoTemplateSteps(portalHost: string): ApiStep[] {
  const base = `http://${portalHost}`;
  return [
    { type: 'navigate', url: `${base}/login` },
    { type: 'fill', selector: '#username', value: 'demo' },
    { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
    { type: 'click', selector: '#submit' },
    { type: 'waitFor', selector: 'table#invoices' },
    { type: 'screenshot', fullPage: true },
    { type: 'download', selector: 'a.pdf' },
    {
      type: 'extract', name: 'invoices', selector: 'table#invoices tbody tr',
      fields: { number: 'td.number', date: 'td.date', amount: 'td.amount', pdf: { selector: 'a.pdf', attribute: 'href' } },
    },
  ];
}

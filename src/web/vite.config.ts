/**
 * Vite's configuration of the dashboard. Its root is this folder (src/web); the output directory is given by the
 * caller (src/embedded/web-build.ts: dist/web). Nothing is inlined as a data: URI (assetsInlineLimit 0) and nothing
 * inline runs: the page's Content-Security-Policy allows scripts and styles from the origin's files only.
 */
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    target: 'es2022',
    assetsDir: 'assets',
    assetsInlineLimit: 0,
    sourcemap: false,
    // The entry is small (pages load on demand); a chunk above this is worth a look.
    chunkSizeWarningLimit: 400,
    modulePreload: { polyfill: false },
  },
});

// Builds the web console into ../build/web (override with XENIA_WEB_OUT),
// which xeniad serves. Everything is bundled: the page loads nothing
// from anywhere but the daemon.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const out = process.env.XENIA_WEB_OUT ||
  fileURLToPath(new URL('../build/web', import.meta.url));

export default defineConfig({
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: out,
    emptyOutDir: true,
    // noVNC uses top-level await
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        // the graphical console and the terminal load when first opened
        manualChunks: { novnc: ['@novnc/novnc'], xterm: ['@xterm/xterm', '@xterm/addon-fit'] },
      },
    },
  },
});

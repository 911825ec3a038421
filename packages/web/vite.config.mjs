// Vite configuration of the web app. JSX is Preact's (automatic runtime);
// the SDK and the protocol schemas are bundled from their TypeScript sources.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 400,
    // The build is a second or two; rolldown's plugin-timing advice is noise here.
    rolldownOptions: { checks: { pluginTimings: false } },
  },
});

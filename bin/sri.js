#!/usr/bin/env node
// Launcher for `npx sri …`: registers tsx (the project has no build step) and runs the TypeScript CLI in this
// same process, so signals (Ctrl-C) reach `sri up` directly.
import 'tsx';

const { main } = await import('../src/cli/main.ts');
await main(process.argv);

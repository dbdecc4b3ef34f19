// Lint enforces the plane boundaries described in ../shared/STYLE.md and ARCHITECTURE.md.
import tseslint from 'typescript-eslint';

const dbDrivers = ['pg', 'pg-*', '@electric-sql/*'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', 'logs/**', 'bin/**', 'dist/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }],
      }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // The execution plane never reaches PostgreSQL or the API.
    files: ['src/execution-plane/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/control-plane/**', '**/control-plane'], message: 'The execution plane must not import the control plane.' },
          { group: ['**/embedded/**', '**/cli/**'], message: 'The execution plane must not import the embedded stack or CLI.' },
          { group: dbDrivers, message: 'The execution plane must not use a PostgreSQL driver.' },
        ],
      }],
    },
  },
  {
    // The dashboard runs in the browser and knows the API only through its generated types (src/web/api/schema.d.ts).
    files: ['src/web/**/*.ts', 'src/web/**/*.tsx'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/control-plane/**', '**/control-plane', '**/execution-plane/**', '**/execution-plane', '**/shared/**', '**/shared', '**/embedded/**', '**/cli/**'],
            message: 'The web app imports nothing from the planes or their shared contracts: only the generated API types (src/web/api/schema.d.ts, npm run generate:api).' },
          { group: ['node:*', ...dbDrivers, 'ioredis', 'fastify', 'fastify-*', '@fastify/*', '@aws-sdk/*', 'playwright-core'],
            message: 'The web app runs in the browser: no Node.js module, server library or database driver.' },
        ],
      }],
    },
  },
  {
    // The SRI pack's parsers and data (src/sri) run in the worker, the control plane and the CLI alike: they import
    // no plane, only shared contracts.
    files: ['src/sri/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/control-plane/**', '**/execution-plane/**', '**/embedded/**', '**/cli/**'], message: 'src/sri imports neither plane, the embedded stack nor the CLI.' },
          { group: dbDrivers, message: 'src/sri does not use a database driver.' },
        ],
      }],
    },
  },
  {
    // Shared contracts import neither plane.
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/control-plane/**', '**/execution-plane/**', '**/embedded/**', '**/cli/**'], message: 'Shared contracts import neither plane.' },
          { group: dbDrivers, message: 'Shared contracts do not use a database driver.' },
        ],
      }],
    },
  },
);

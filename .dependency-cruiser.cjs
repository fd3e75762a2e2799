/**
 * The house's dependency rules, checked by `npm run lint` (depcruise). Each
 * rule says why; tests/unit/dependency-rules.test.ts proves they fail when
 * broken.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle ties files that should be able to change apart; break it with a port.',
      severity: 'error',
      from: { path: '^(src|agent|lib)/' },
      to: { circular: true },
    },
    {
      name: 'agent-ships-alone',
      comment: 'The agent depends only on lib/ (the shared kernel), gen/ and npm packages, never on the control plane.',
      severity: 'error',
      from: { path: '^agent/' },
      to: { path: '^(src|bench|tests|scripts)/' },
    },
    {
      name: 'lib-is-the-kernel',
      comment: 'lib/ is what both sides share; it depends on neither.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^(src|agent|gen|bench|tests|scripts)/' },
    },
    {
      name: 'platform-knows-no-capability',
      comment:
        'src/platform/ is infrastructure (database, coordination, crypto): no business rules, no capability imports.',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: '^src/(?!platform/)' },
    },
    {
      name: 'protocol-at-the-edges',
      comment:
        'Only handlers, src/transport/ and the composition root speak protobuf and Connect; services and repositories take domain types.',
      severity: 'error',
      from: {
        path: '^src/',
        pathNot: ['\\.handler\\.ts$', '^src/transport/', '^src/app\\.ts$', '^src/main\\.ts$'],
      },
      to: { path: ['^gen/', '^node_modules/(@connectrpc|@bufbuild)/'] },
    },
    {
      name: 'scheduling-is-pure',
      comment:
        'The scheduler and placement decide from what they are handed; I/O stays behind ports implemented elsewhere.',
      severity: 'error',
      from: { path: '^src/scheduling/' },
      to: {
        path: [
          '^src/(?!scheduling/)',
          '^node_modules/(@mikro-orm|ioredis|pg|pg-protocol|@electric-sql|@grpc|@connectrpc)/',
        ],
        pathNot: ['^lib/'],
      },
    },
    {
      name: 'scheduling-no-node-io',
      comment: 'No file system, network or processes in the scheduler either.',
      severity: 'error',
      from: { path: '^src/scheduling/' },
      // (/|$): node:fs/promises resolves to fs/promises.
      to: {
        dependencyTypes: ['core'],
        path: '^(fs|net|http|http2|https|child_process|dgram|tls|worker_threads)(/|$)',
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // npm packages are kept as (unfollowed) leaves, not excluded: rules name some of them.
    exclude: { path: '^gen/buf' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};

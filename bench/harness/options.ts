/**
 * Every bench's flags, declared once: name, type, default, bounds, the
 * environment variable that may set it instead, and its line in --help.
 * A flag wins over its variable, the variable over the default; an empty
 * variable counts as unset.
 */

/** Thrown for flags or variables a person must fix; the message is one line that names the culprit. */
export class BenchOptionsError extends Error {}

/** How one option is read; built with integer(), boolean() and localUrl() below. */
export interface Flag<T> {
  /** --<flag>; by default the option's key in kebab-case. */
  flag?: string;
  env?: string;
  help: string;
  /** `<n>`, `<s>`, `<url>`...; empty for a switch, which takes no value. */
  placeholder: string;
  /** The value when neither the flag nor its variable is set. */
  fallback: T;
  /** What --help says the default is. */
  defaultText?: string;
  /** The text given, as a value; throws a reason ("expected ...") when it is not one. */
  parse(text: string): T;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A whole number from `min` to `max`; `default` undefined makes it optional (`defaultText` says what then). */
export function integer<D extends number | undefined>(spec: {
  help: string;
  default: D;
  min: number;
  max: number;
  env?: string;
  flag?: string;
  /** The placeholder in --help: `<n>` by default, `<s>` or `<ms>` for durations. */
  unit?: 'n' | 's' | 'ms';
  defaultText?: string;
}): Flag<number | D> {
  return {
    flag: spec.flag,
    env: spec.env,
    help: spec.help,
    placeholder: `<${spec.unit ?? 'n'}>`,
    fallback: spec.default,
    defaultText: spec.defaultText ?? (spec.default === undefined ? undefined : String(spec.default)),
    parse: (text) => {
      const value = Number(text);
      if (text.trim() === '' || !Number.isInteger(value) || value < spec.min || value > spec.max)
        throw new Error(`expected a whole number from ${spec.min} to ${spec.max}`);
      return value;
    },
  };
}

/** A switch: `--<flag>` turns it on; its variable may say 1/true or 0/false. */
export function boolean(spec: { help: string; env?: string; flag?: string }): Flag<boolean> {
  return {
    flag: spec.flag,
    env: spec.env,
    help: spec.help,
    placeholder: '',
    fallback: false,
    parse: (text) => {
      if (text === '1' || text === 'true') return true;
      if (text === '0' || text === 'false') return false;
      throw new Error('expected 1, true, 0 or false');
    },
  };
}

/** A comma-separated list of numbers from `min` to `max`, e.g. "0.25,0.5,1". */
export function numberList(spec: {
  help: string;
  default: readonly number[];
  min: number;
  max: number;
  env?: string;
  flag?: string;
}): Flag<readonly number[]> {
  return {
    flag: spec.flag,
    env: spec.env,
    help: spec.help,
    placeholder: '<list>',
    fallback: spec.default,
    defaultText: spec.default.join(','),
    parse: (text) => {
      const values = text.split(',').map((part) => Number(part.trim()));
      if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v < spec.min || v > spec.max))
        throw new Error(`expected comma-separated numbers from ${spec.min} to ${spec.max}`);
      return values;
    },
  };
}

/**
 * A URL on this machine only: the benches create and drop databases and
 * write Redis keys, so they refuse anything but the machine's own servers.
 */
export function localUrl(spec: {
  help: string;
  protocols: readonly string[];
  default: string;
  env?: string;
  flag?: string;
}): Flag<string> {
  return {
    flag: spec.flag,
    env: spec.env,
    help: spec.help,
    placeholder: '<url>',
    fallback: spec.default,
    defaultText: spec.default,
    parse: (text) => {
      let url: URL | undefined;
      try {
        url = new URL(text);
      } catch {
        // Reported below.
      }
      const local = url !== undefined && (LOOPBACK.has(url.hostname) || url.hostname.startsWith('127.'));
      if (!url || !spec.protocols.includes(url.protocol) || !local)
        throw new Error(
          `expected a ${spec.protocols.join(' or ')} URL on this machine (127.0.0.1, localhost or [::1])`,
        );
      return text;
    },
  };
}

/**
 * The PostgreSQL and Redis a bench uses (each run creates its own database
 * and key prefix): --postgres-url (BENCH_POSTGRES_URL) and --redis-url
 * (BENCH_REDIS_URL).
 */
export function backingServiceFlags(postgresDefault = 'postgres://postgres@127.0.0.1:5432/test') {
  return {
    postgresUrl: localUrl({
      help: 'where to create the throwaway database',
      env: 'BENCH_POSTGRES_URL',
      protocols: ['postgres:', 'postgresql:'],
      default: postgresDefault,
    }),
    redisUrl: localUrl({
      help: 'Redis to use with a unique key prefix',
      env: 'BENCH_REDIS_URL',
      protocols: ['redis:'],
      default: 'redis://127.0.0.1:6379',
    }),
  };
}

type Flags = Record<string, Flag<unknown>>;

/** The options a set of flags gives, by key. */
export type OptionValues<F extends Flags> = { [K in keyof F]: F[K] extends Flag<infer T> ? T : never };

/** A bench's flags, ready to parse argv and the environment and to print --help. */
export interface BenchFlags<V> {
  /** The options, or `help` when --help was given. */
  parse(argv: readonly string[], env: NodeJS.ProcessEnv): V | 'help';
  usage(): string;
}

/**
 * Declares a bench's flags. `check` sees the parsed values and returns a
 * problem (naming the flag) when they do not fit together; `compile` derives
 * what depends on several of them (defaults that follow from others);
 * `notes` go under the flags in --help.
 */
export function defineOptions<F extends Flags, R = OptionValues<F>>(spec: {
  command: string;
  flags: F;
  check?: (values: OptionValues<F>) => string | undefined;
  compile?: (values: OptionValues<F>) => R;
  notes?: string;
}): BenchFlags<R> {
  const entries = Object.entries(spec.flags).map(([key, flag]) => ({ key, flag, name: flagName(key, flag) }));
  const byName = new Map(entries.map((entry) => [entry.name, entry]));
  return {
    usage: () => {
      const lines = [
        ...entries.map(({ name, flag }) => {
          const about = [flag.env && (flag.placeholder ? flag.env : `${flag.env}=1`), flagDefault(flag)]
            .filter(Boolean)
            .join(', ');
          return [
            `--${name}${flag.placeholder ? ` ${flag.placeholder}` : ''}`,
            about ? `${flag.help} (${about})` : flag.help,
          ];
        }),
        ['--help', 'show this text'],
      ];
      const width = Math.max(...lines.map(([left]) => left?.length ?? 0)) + 2;
      const body = lines.map(([left = '', right = '']) => `  ${left.padEnd(width)}${right}`).join('\n');
      return `Usage: ${spec.command} -- [options]\n\n${body}\n${spec.notes ? `\n${spec.notes.trimEnd()}\n` : ''}`;
    },
    parse: (argv, env) => {
      const given = readArgv(argv, byName);
      if (given === 'help') return 'help';
      const values: Record<string, unknown> = {};
      for (const { key, flag, name } of entries) {
        const fromFlag = given.get(name);
        const fromEnv = flag.env ? env[flag.env] : undefined;
        const [source, text] =
          fromFlag !== undefined
            ? [`--${name}${flag.placeholder ? ` ${fromFlag}` : ''}`, fromFlag]
            : fromEnv !== undefined && fromEnv !== ''
              ? [`${flag.env}=${fromEnv}`, fromEnv]
              : [undefined, undefined];
        try {
          values[key] = text === undefined ? flag.fallback : flag.parse(text);
        } catch (error) {
          throw new BenchOptionsError(`${source}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      const typed = values as OptionValues<F>;
      const problem = spec.check?.(typed);
      if (problem) throw new BenchOptionsError(problem);
      return spec.compile ? spec.compile(typed) : (typed as R);
    },
  };
}

function flagName(key: string, flag: Flag<unknown>): string {
  return flag.flag ?? key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

function flagDefault(flag: Flag<unknown>): string | undefined {
  return flag.defaultText === undefined ? undefined : `default ${flag.defaultText}`;
}

/**
 * --name value, --name=value and switches; the values as text, by flag name.
 * Anything else (an unknown flag, a missing value, a stray word) is an error.
 */
function readArgv(argv: readonly string[], known: Map<string, { flag: Flag<unknown> }>): Map<string, string> | 'help' {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new BenchOptionsError(`unexpected argument '${arg}': flags start with --`);
    const [name = '', inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (name === 'help') return 'help';
    const entry = known.get(name);
    if (!entry) throw new BenchOptionsError(`unknown flag --${name}`);
    if (!entry.flag.placeholder) {
      if (inline !== undefined) throw new BenchOptionsError(`--${name} takes no value`);
      given.set(name, 'true');
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--')))
      throw new BenchOptionsError(`--${name} needs a value ${entry.flag.placeholder}`);
    given.set(name, value);
  }
  return given;
}

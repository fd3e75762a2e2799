import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

// /proc/<pid>/stat counts CPU time in clock ticks; ask once rather than assume 100.
const ticksPerSecond = readClockTicks();

function readClockTicks(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}

/** Resident set size of a process, from /proc/<pid>/status (what the kernel charges it, heap and native alike). */
export function readRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** User plus system CPU time a process has used so far, in seconds. */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses; fields
  // after its closing parenthesis are space-separated, starting at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unreadable /proc/${pid}/stat`);
  return (utime + stime) / ticksPerSecond;
}

/** CPU time the whole machine spent busy (all cores, every process and the kernel), in seconds. */
export function readMachineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal ...; guest time is already inside user.
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const busy = [user, nice, system, irq, softirq, steal].reduce<number>((sum, value) => sum + (value ?? 0), 0);
  return busy / ticksPerSecond;
}

/** CPU used between two readings, in percent of one core (so 200 is both cores of a 2-vCPU machine). */
export function cpuPercent(startSeconds: number, endSeconds: number, wallMs: number): number {
  return ((endSeconds - startSeconds) / (wallMs / 1000)) * 100;
}

/** CPU seconds used so far by every process whose command name is in `names`, by pid. */
export function readCpuSecondsByName(names: readonly string[]): Map<number, number> {
  const found = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      if (names.includes(command)) found.set(pid, readCpuSeconds(pid));
    } catch {
      // The process ended between listing and reading: it simply is not counted.
    }
  }
  return found;
}

/**
 * CPU used between two readings of the same group. A process that started
 * in between counts in full; one that ended in between is lost, which
 * undercounts (never overcounts) short-lived PostgreSQL backends.
 */
export function groupCpuSeconds(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0);
  return total;
}

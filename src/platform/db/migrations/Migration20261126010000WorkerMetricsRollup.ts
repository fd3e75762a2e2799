import { Migration } from '@mikro-orm/migrations';

/** Per-minute worker metrics history (24 h), shown by GetWorker. */
export class Migration20261126010000WorkerMetricsRollup extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "worker_metrics_rollup" ("worker_id" uuid not null, "minute" timestamptz not null, "samples" int not null, "cpu_percent_avg" double precision not null, "cpu_percent_max" double precision not null, "rss_bytes_max" double precision not null, "memory_percent_avg" double precision not null, "event_loop_lag_ms_max" double precision not null, "session_count_max" int not null, constraint "worker_metrics_rollup_pkey" primary key ("worker_id", "minute"));`,
    );
    this.addSql(`create index "worker_metrics_rollup_minute_idx" on "worker_metrics_rollup" ("minute");`);
    this.addSql(
      `alter table "worker_metrics_rollup" add constraint "worker_metrics_rollup_worker_id_foreign" foreign key ("worker_id") references "worker" ("id") on update cascade on delete cascade;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "worker_metrics_rollup";`);
  }
}

import { Migration } from '@mikro-orm/migrations';

export class Migration20261123212803_runs extends Migration {

  override name = 'Migration20261123212803_runs';

  override up(): void | Promise<void> {
    this.addSql(`alter table "run" add "requested_episodes" jsonb not null default '[]', add "restore_point" varchar(10) null, add "cursors_before" jsonb null, add "cursors_after" jsonb null, add "progress" jsonb null, add "cancel_requested" boolean not null default false, add "worker" varchar(200) null, add "callback" jsonb null;`);
    this.addSql(`create index "run_status_index" on "run" ("status");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop index "run_status_index";`);
    this.addSql(`alter table "run" drop column "requested_episodes", drop column "restore_point", drop column "cursors_before", drop column "cursors_after", drop column "progress", drop column "cancel_requested", drop column "worker", drop column "callback";`);
  }

}

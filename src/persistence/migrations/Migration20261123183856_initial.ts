import { Migration } from '@mikro-orm/migrations';

export class Migration20261123183856_initial extends Migration {

  override name = 'Migration20261123183856_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "instance" ("id" uuid not null, "model" varchar(200) not null, "description" text not null, "arguments" jsonb not null, "seed" bigint not null, "parameters" jsonb not null, "state" jsonb not null, "parameters_version" int not null default 0, "parameters_run_id" uuid null, "version" int not null default 1, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "instance_model_index" on "instance" ("model");`);
    this.addSql(`create index "instance_created_at_index" on "instance" ("created_at");`);

    this.addSql(`create table "episode" ("id" uuid not null, "instance_id" uuid not null, "name" varchar(200) not null, "event_count" bigint not null default '0', "learned_count" bigint not null default '0', "first_event_at" timestamptz null, "last_event_at" timestamptz null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "episode" add constraint "episode_instance_id_name_unique" unique ("instance_id", "name");`);

    this.addSql(`create table "event" ("episode_id" uuid not null, "seq" bigint not null, "timestamp" timestamptz not null, "data" jsonb not null, "metadata" jsonb null, primary key ("episode_id", "seq"));`);

    this.addSql(`create table "run" ("id" uuid not null, "instance_id" uuid not null, "kind" varchar(20) not null, "status" varchar(20) not null, "relearn" boolean not null default false, "episodes" jsonb not null, "parameter_names" jsonb not null, "options" jsonb not null, "callback_url" text null, "parameters_before" jsonb null, "state_before" jsonb null, "parameters_after" jsonb null, "state_after" jsonb null, "version_before" int null, "version_after" int null, "metrics" jsonb null, "error" text null, "attempts" int not null default 0, "restored_run_id" uuid null, "created_at" timestamptz not null, "started_at" timestamptz null, "finished_at" timestamptz null, primary key ("id"));`);
    this.addSql(`create index "run_instance_id_created_at_index" on "run" ("instance_id", "created_at");`);

    this.addSql(`alter table "episode" add constraint "episode_instance_id_foreign" foreign key ("instance_id") references "instance" ("id") on delete cascade;`);

    this.addSql(`alter table "event" add constraint "event_episode_id_foreign" foreign key ("episode_id") references "episode" ("id") on delete cascade;`);

    this.addSql(`alter table "run" add constraint "run_instance_id_foreign" foreign key ("instance_id") references "instance" ("id") on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "episode" drop constraint "episode_instance_id_foreign";`);
    this.addSql(`alter table "run" drop constraint "run_instance_id_foreign";`);
    this.addSql(`alter table "event" drop constraint "event_episode_id_foreign";`);

    this.addSql(`drop table if exists "instance" cascade;`);
    this.addSql(`drop table if exists "episode" cascade;`);
    this.addSql(`drop table if exists "event" cascade;`);
    this.addSql(`drop table if exists "run" cascade;`);
  }

}

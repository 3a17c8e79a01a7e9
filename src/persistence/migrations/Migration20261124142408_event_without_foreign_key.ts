import { Migration } from '@mikro-orm/migrations';

export class Migration20261124142408_event_without_foreign_key extends Migration {

  override name = 'Migration20261124142408_event_without_foreign_key';

  override up(): void | Promise<void> {
    this.addSql(`alter table "event" drop constraint "event_episode_id_foreign";`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "event" add constraint "event_episode_id_foreign" foreign key ("episode_id") references "episode" ("id") on update no action on delete cascade;`);
  }

}

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ('predictor', '0015_messages_as_codes'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='prediction',
            name='error',
        ),
    ]

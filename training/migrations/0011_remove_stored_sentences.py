from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ('training', '0010_messages_as_codes'),
    ]

    operations = [
        # After the stages became codes: an old one ("preparing chips 5200/18454") is longer.
        migrations.AlterField(
            model_name='trainingrun',
            name='stage',
            field=models.CharField(blank=True, choices=[('', 'not started'), ('preparing', 'preparing chips'), ('training', 'training'), ('evaluating', 'evaluating')], default='', max_length=20, verbose_name='stage'),
        ),
        migrations.RemoveField(
            model_name='dataset',
            name='error',
        ),
        migrations.RemoveField(
            model_name='trainingrun',
            name='error',
        ),
    ]

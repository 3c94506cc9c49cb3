"""windows indexed by (recording_id, start_s), for fetching a stretch of a recording's windows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 20:40:00
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('windows', schema=None) as batch_op:
        batch_op.create_index('ix_windows_recording_id_start_s', ['recording_id', 'start_s'], unique=False)
        batch_op.drop_index('ix_windows_recording_id')


def downgrade() -> None:
    with op.batch_alter_table('windows', schema=None) as batch_op:
        batch_op.create_index('ix_windows_recording_id', ['recording_id'], unique=False)
        batch_op.drop_index('ix_windows_recording_id_start_s')

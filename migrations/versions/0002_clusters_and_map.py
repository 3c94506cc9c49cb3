"""cluster assignments and map coordinates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 17:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cluster_assignments',
    sa.Column('recording_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cluster', sa.Integer(), nullable=False),
    sa.Column('distance', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recording_id')
    )
    with op.batch_alter_table('cluster_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cluster_assignments_cluster'), ['cluster'], unique=False)

    op.create_table('map_points',
    sa.Column('recording_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('recording_id', 'method')
    )


def downgrade() -> None:
    op.drop_table('map_points')
    with op.batch_alter_table('cluster_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cluster_assignments_cluster'))

    op.drop_table('cluster_assignments')

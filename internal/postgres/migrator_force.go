package postgres

import (
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
)

// Force records version as the schema version and clears the dirty flag without running any
// migration: for a migration that failed half-way and was repaired by hand (golang-migrate's
// `force`). -1 records that no migration is applied.
func (m *Migrator) Force(version int) error {
	if err := m.m.Force(version); err != nil {
		return fmt.Errorf("migrate force %d: %w", version, err)
	}
	return nil
}

// Goto migrates up or down to version. Already being there is not an error.
func (m *Migrator) Goto(version uint) error {
	if err := m.m.Migrate(version); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate goto %d: %w", version, err)
	}
	return nil
}

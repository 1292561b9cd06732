package console

import "golang.org/x/crypto/bcrypt"

func init() { bcryptCost = bcrypt.MinCost }

// Catalog returns the messages of lang.
func Catalog(lang string) map[string]string { return catalog[lang] }

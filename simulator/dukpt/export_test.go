package dukpt

// Internals for the external tests: the data encryption of the card block
// on raw bytes, to check it against other implementations' vectors.
var (
	EncryptData = encryptData
	DecryptData = decryptData
)

// EncryptCard is the terminal's card block encryption under a given key.
var EncryptCard = encryptCard

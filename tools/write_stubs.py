"""Regenerate keras_nfnets/__init__.pyi and keras_nfnets/applications.pyi (the names and signatures
IDEs see for the lazy package and the generated builders) after a variant or export changes."""

from keras_nfnets._stubs import write_stubs

if __name__ == "__main__":
    for path in write_stubs():
        print("wrote", path)

"""The 27 Rakuten France product type codes and their human names.

Rakuten published no names for the codes; these are the names commonly used by challenge
participants (French and English). The code <-> index mapping used by a model is stored in its
bundle; :data:`CATEGORIES` is the canonical order new models are trained with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Category(BaseModel):
    """One product type code with its names."""

    model_config = ConfigDict(frozen=True)

    code: int
    name_fr: str
    name_en: str


_RAW: tuple[tuple[int, str, str], ...] = (
    (10, "Livres anciens / occasion", "Used book"),
    (40, "Jeux vidéos anciens, équipement", "Video game, tech accessory"),
    (50, "Accessoires & produits dérivés gaming", "Console accessory"),
    (60, "Consoles de jeu", "Game console"),
    (1140, "Figurines", "Figurine"),
    (1160, "Cartes de jeu", "Collectible card"),
    (1180, "Figurines & Jeux de Société", "Board game"),
    (1280, "Jeux & jouets pour enfants", "Children's toy, costume"),
    (1281, "Jeux de société", "Social game"),
    (1300, "Modélisme", "Tech toy"),
    (1301, "Vêtements bébé et jeux pour la maison", "Pair of socks"),
    (1302, "Jeux & jouets d'extérieur pour enfants", "Outdoor game, clothing"),
    (1320, "Jouets & accessoires pour bébé", "Baby-related items"),
    (1560, "Meubles d'intérieur", "Indoor furniture"),
    (1920, "Linge de maison", "Bedroom"),
    (1940, "Alimentation & vaisselle", "Kitchen"),
    (2060, "Objets décoration maison", "Home decoration"),
    (2220, "Equipement pour animaux", "Animal"),
    (2280, "Journaux, revues, magazines anciens", "Magazines and newspapers"),
    (2403, "Livres, BD, magazines anciens", "Magazines, books and comics"),
    (2462, "Consoles, jeux et équipement occasion", "Used game"),
    (2522, "Papeterie", "Office supplies and stationery"),
    (2582, "Meubles d'extérieur", "Outdoor furniture"),
    (2583, "Equipement pour piscine", "Poolside items"),
    (2585, "Outillage intérieur / extérieur, tâches ménagères", "DIY"),
    (2705, "Livres neufs", "New book"),
    (2905, "Jeux PC", "PC game"),
)

CATEGORIES: tuple[Category, ...] = tuple(
    Category(code=code, name_fr=fr, name_en=en) for code, fr, en in _RAW
)
CODES: tuple[int, ...] = tuple(c.code for c in CATEGORIES)
NUM_CLASSES = len(CATEGORIES)


class CategoryIndex:
    """Bidirectional code <-> index mapping for one ordered list of categories.

    Built from a bundle's stored categories at serve time, never from :data:`CATEGORIES`, so a
    model keeps answering with the label order it was trained with.
    """

    def __init__(self, categories: tuple[Category, ...] | list[Category] = CATEGORIES) -> None:
        self.categories: tuple[Category, ...] = tuple(categories)
        self._index = {c.code: i for i, c in enumerate(self.categories)}
        if len(self._index) != len(self.categories):
            raise ValueError("duplicate product type codes in category list")

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, code: object) -> bool:
        return code in self._index

    def index_of(self, code: int) -> int:
        """Index of ``code``; raises ``KeyError`` naming the unknown code."""
        try:
            return self._index[int(code)]
        except KeyError:
            raise KeyError(f"unknown prdtypecode {code!r}") from None

    def code_of(self, index: int) -> int:
        return self.categories[index].code

    def category(self, code: int) -> Category:
        return self.categories[self.index_of(code)]

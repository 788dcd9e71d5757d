"""French product vocabulary per class, for the offline sample generator.

Each class gets nouns, qualifiers and description phrases in the style of real Rakuten listings.
Classes of one family (books, games, toys, furniture) deliberately share a vocabulary, as in the
real data, so that text alone cannot separate them perfectly and the image has something to add.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassVocab:
    """Words a listing of one class is built from."""

    nouns: tuple[str, ...]
    qualifiers: tuple[str, ...]
    phrases: tuple[str, ...]
    family: str


def _w(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("|") if part.strip())


# Words shared by every family: they make the task harder without carrying class signal.
COMMON_QUALIFIERS = _w(
    "Neuf|Occasion|Lot De 2|Lot De 3|Noir|Blanc|Rouge|Bleu|Vert|Taille Unique|Édition Limitée|"
    "Pas Cher|Qualité Supérieure|Vintage|Original|Collection|Cadeau|Rare|Promo|Français"
)
COMMON_PHRASES = _w(
    "Livraison rapide et soignée.|Produit conforme à la description.|Très bon état général.|"
    "Idéal pour offrir.|Expédié sous 48h.|Photos non contractuelles.|Garantie 2 ans.|"
    "Article vendu par un professionnel.|Emballage d'origine.|Satisfait ou remboursé."
)
BRANDS = _w(
    "Générique|Sans Marque|Lego|Hasbro|Mattel|Playmobil|Sony|Nintendo|Ikea|Bosch|Intex|Bestway|"
    "Gallimard|Hachette|Panini|Ravensburger|Tefal|Clairefontaine|Vtech|Fisher-Price|Disney"
)
FAMILY_WORDS = {
    "book": _w(
        "Livre|Roman|Tome 1|Tome 2|Auteur|Éditions|Broché|Poche|Collection|Chapitre|Préface"
    ),
    "game": _w("Jeu|Console|Manette|Nintendo|Playstation|Xbox|Pal|Version Française|Sega|Cd"),
    "toy": _w("Jouet|Enfant|Figurine|Jeu|Peluche|Dès 3 Ans|Cadeau Enfant|Collection|Personnage"),
    "home": _w("Maison|Décoration|Salon|Chambre|Design|Moderne|Bois|Coton|Intérieur|Cm"),
    "outdoor": _w("Jardin|Extérieur|Terrasse|Piscine|Été|Résistant|Acier|Outil|Cm|Pompe"),
    "paper": _w("Papier|Bureau|Stylo|A4|Cahier|Agenda|Feuilles|Scolaire|Notes"),
}

VOCAB: dict[int, ClassVocab] = {
    10: ClassVocab(
        _w("Livre Ancien|Roman|Essai|Recueil De Poèmes|Mémoires|Biographie|Traité|Dictionnaire"),
        _w("Édition Originale|1952|1968|1974|Relié|Reliure Cuir|Broché|Jauni|Annoté|In-8"),
        _w(
            "Ouvrage ancien en bon état.|Quelques rousseurs.|Dos légèrement frotté.|Bel exemplaire."
        ),
        "book",
    ),
    40: ClassVocab(
        _w("Jeu Video|Cartouche|Jeu Ps2|Jeu Xbox 360|Jeu Wii|Jeu Gamecube|Import Japon|Cd-Rom"),
        _w("Pal Fr|Version Import|Complet|Sans Notice|Ntsc|Classique|Rétro|Collector"),
        _w("Jeu testé et fonctionnel.|Boîte et notice incluses.|Rétrogaming.|Import japonais."),
        "game",
    ),
    50: ClassVocab(
        _w("Manette|Chargeur|Câble Hdmi|Housse De Protection|Stylet|Support|Volant|Casque Gamer"),
        _w("Compatible Ps4|Pour Nintendo Switch|Xbox One|Sans Fil|Usb|Bluetooth|Ergonomique|Led"),
        _w("Accessoire compatible console.|Prise en main confortable.|Recharge rapide via usb."),
        "game",
    ),
    60: ClassVocab(
        _w("Console|Console Portable|Pack Console|Mini Console Rétro|Console De Salon|Game Boy"),
        _w("500 Go|1 To|Avec 2 Manettes|Édition Spéciale|Hd|620 Jeux Intégrés|Reconditionnée"),
        _w("Console complète avec câbles.|Sortie hdmi.|Jeux intégrés.|Console débloquée."),
        "game",
    ),
    1140: ClassVocab(
        _w("Figurine|Statuette|Figurine Pop|Buste|Figurine Articulée|Goodies|Funko Pop"),
        _w("Marvel|Dragon Ball Z|One Piece|Star Wars|Naruto|Pvc|15 Cm|Manga|Collector"),
        _w("Figurine de collection en pvc.|Hauteur environ 15 cm.|Livrée en boîte fenêtre."),
        "toy",
    ),
    1160: ClassVocab(
        _w("Carte Pokemon|Carte Yu-Gi-Oh|Carte Magic|Booster|Display|Deck|Carte Panini"),
        _w("Holo|Reverse|Rare|Ultra Rare|Vf|Mint|Commune|Gx|Ex|1ère Édition"),
        _w("Carte en excellent état.|Protégée en sleeve.|Booster scellé.|Carte à collectionner."),
        "toy",
    ),
    1180: ClassVocab(
        _w("Figurine Warhammer|Jeu De Figurines|Miniature|Dés|Extension|Plateau De Jeu|Socle"),
        _w("28 Mm|À Peindre|Warhammer 40k|Heroclix|Résine|Métal|Fantasy|Jdr"),
        _w("Figurine à assembler et à peindre.|Jeu de rôle.|Livrée non peinte.|Socle inclus."),
        "toy",
    ),
    1280: ClassVocab(
        _w("Peluche|Poupée|Déguisement|Voiture Miniature|Jouet En Bois|Marionnette|Dînette"),
        _w("Enfant|Dès 3 Ans|Disney|Doux|Garçon|Fille|Multicolore|Éducatif"),
        _w("Jouet pour enfant.|Peluche toute douce.|Déguisement taille 5-6 ans.|Jouet d'éveil."),
        "toy",
    ),
    1281: ClassVocab(
        _w("Jeu De Société|Jeu De Cartes|Puzzle|Jeu De Plateau|Jeu D'ambiance|Casse-Tête"),
        _w("2 À 6 Joueurs|1000 Pièces|Familial|Stratégie|Ravensburger|Asmodee|Dès 8 Ans"),
        _w("Jeu de société pour toute la famille.|Partie de 30 minutes.|Puzzle 1000 pièces."),
        "toy",
    ),
    1300: ClassVocab(
        _w("Drone|Voiture Rc|Hélicoptère Radiocommandé|Maquette|Hélice|Batterie Lipo|Moteur"),
        _w("Rc|1/10|4wd|Brushless|2.4ghz|Caméra Hd|Pièce Détachée|Quadcopter"),
        _w("Modèle radiocommandé.|Batterie rechargeable.|Pièce de rechange compatible."),
        "toy",
    ),
    1301: ClassVocab(
        _w("Chaussettes|Chaussons Bébé|Body|Grenouillère|Baby-Foot|Fléchettes|Billard"),
        _w("Coton|Naissance|0-3 Mois|Lot De 5 Paires|Antidérapant|Jeu De Bar|Bébé"),
        _w("Chaussettes en coton doux.|Lot de paires assorties.|Jeu de bar pour la maison."),
        "toy",
    ),
    1302: ClassVocab(
        _w("Trampoline|Balançoire|Ballon|Trottinette|Pistolet À Eau|Cerf-Volant|Toboggan"),
        _w("Extérieur|Jardin|Enfant|Plein Air|Été|Gonflable|Sport|Ø 305 Cm"),
        _w("Jeu de plein air pour enfants.|Idéal pour le jardin.|Structure en acier galvanisé."),
        "outdoor",
    ),
    1320: ClassVocab(
        _w("Tapis D'éveil|Biberon|Poussette|Siège Auto|Mobile Bébé|Chaise Haute|Bavoir"),
        _w("Bébé|Naissance|Sans Bpa|0-12 Mois|Puériculture|Réglable|Pliable"),
        _w("Article de puériculture.|Sans bpa.|Convient dès la naissance.|Facile à plier."),
        "toy",
    ),
    1560: ClassVocab(
        _w("Commode|Table Basse|Étagère|Armoire|Chaise|Bureau|Lit|Meuble Tv|Canapé"),
        _w("Chêne|Bois Massif|Scandinave|Industriel|Blanc Laqué|3 Tiroirs|120 Cm|Salon"),
        _w("Meuble d'intérieur.|Montage facile.|Dimensions l120 x p40 x h75 cm.|Bois massif."),
        "home",
    ),
    1920: ClassVocab(
        _w("Housse De Couette|Oreiller|Drap Housse|Coussin|Plaid|Rideau|Parure De Lit"),
        _w("Coton|240x220|Microfibre|Polyester|2 Personnes|Imprimé|Doux|Lavable"),
        _w("Linge de maison en coton.|Lavable en machine à 40°C.|Housse de coussin 45x45 cm."),
        "home",
    ),
    1940: ClassVocab(
        _w("Café|Thé|Chocolat|Bonbons|Épices|Biscuits|Confiserie|Capsules|Miel"),
        _w("Bio|Sans Gluten|100g|500g|Lot De 5|Arôme Naturel|Gourmand|Artisanal"),
        _w("Produit alimentaire.|À conserver au sec.|Sans gluten.|Date limite longue."),
        "home",
    ),
    2060: ClassVocab(
        _w("Sticker Mural|Lampe|Cadre Photo|Vase|Horloge|Guirlande|Bougie|Miroir|Tableau"),
        _w("Décoration|Salon|Led|Vintage|Doré|Design|Autocollant|Romantique"),
        _w("Objet de décoration.|Sticker mural facile à poser.|Ambiance chaleureuse."),
        "home",
    ),
    2220: ClassVocab(
        _w("Collier Chien|Arbre À Chat|Gamelle|Litière|Aquarium|Laisse|Griffoir|Cage"),
        _w("Chien|Chat|Animaux|Réglable|Nylon|Rongeur|Oiseau|Poisson"),
        _w("Accessoire pour animaux.|Convient aux chiens et chats.|Facile à nettoyer."),
        "home",
    ),
    2280: ClassVocab(
        _w("Journal|Magazine|Revue|Le Figaro|Paris Match|Le Monde|Hebdomadaire|Numéro"),
        _w("N° 133|1985|1992|Du 28/09/2001|Ancien|Supplément|Spécial|Mensuel"),
        _w("Revue ancienne.|Numéro complet.|Journal d'époque.|Couverture défraîchie."),
        "book",
    ),
    2403: ClassVocab(
        _w("Bande Dessinée|Bd|Manga|Lot De Livres|Album|Revue|Comics|Intégrale"),
        _w("Tome 3|Dargaud|Casterman|Glénat|Eo|Lot|Ancien|Tintin"),
        _w("Lot de bandes dessinées.|Albums en bon état.|Collection complète."),
        "book",
    ),
    2462: ClassVocab(
        _w("Lot Jeux|Console Occasion|Pack Jeux|Lot Manettes|Jeux Ps3|Jeux Ds|Lot Consoles"),
        _w("Occasion|Testé|Lot De 10|Bon État|Complet|Pal|Vintage|Fonctionne"),
        _w("Lot de jeux d'occasion.|Consoles testées.|Vendu en l'état.|Bon état général."),
        "game",
    ),
    2522: ClassVocab(
        _w("Cahier|Carnet|Agenda|Stylo|Classeur|Trousse|Ramette Papier|Calendrier|Notizbuch"),
        _w("A4|A5|Ligné|Grands Carreaux|2024|Spirale|150 Pages|Punktraster|Personnalisé"),
        _w("Fournitures de bureau.|Papier 90g.|Idéal pour l'école.|Format a5."),
        "paper",
    ),
    2582: ClassVocab(
        _w("Salon De Jardin|Parasol|Transat|Hamac|Table De Jardin|Chaise Longue|Tonnelle"),
        _w("Aluminium|Résine Tressée|Extérieur|Teck|Pliable|Anti-Uv|4 Places|Terrasse"),
        _w("Mobilier de jardin.|Résiste aux intempéries.|Parasol déporté 3 m."),
        "outdoor",
    ),
    2583: ClassVocab(
        _w("Piscine|Pompe De Filtration|Robot Piscine|Bâche|Liner|Skimmer|Spa Gonflable|Chlore"),
        _w("Hors Sol|Tubulaire|Intex|Bestway|Électrique|Ø 366 Cm|Autoportante|Galet"),
        _w("Équipement pour piscine.|Filtration efficace.|Robot électrique de piscine."),
        "outdoor",
    ),
    2585: ClassVocab(
        _w("Perceuse|Tondeuse|Tuyau D'arrosage|Aspirateur|Scie|Nettoyeur Haute Pression|Échelle"),
        _w("Sans Fil|18v|Bosch|Électrique|1500w|Outillage|Jardinage|Professionnel"),
        _w("Outil électroportatif.|Batterie lithium.|Idéal pour le bricolage.|Tuyau 25 m."),
        "outdoor",
    ),
    2705: ClassVocab(
        _w("Livre|Roman|Guide Pratique|Livre De Cuisine|Thriller|Essai|Album Jeunesse"),
        _w("Broché|Poche|2019|Grand Format|Gallimard|Best-Seller|Illustré|Nouveauté"),
        _w("Un roman passionnant.|Résumé : une histoire bouleversante.|Livre neuf."),
        "book",
    ),
    2905: ClassVocab(
        _w("Jeu Pc|Clé Steam|Jeu À Télécharger|Dlc|Jeu Windows|Code De Téléchargement"),
        _w("Pc|Steam|Windows 10|Version Digitale|Mac|Origin|Uplay|Game Of The Year"),
        _w("Jeu pc à télécharger.|Clé d'activation steam.|Configuration minimale requise."),
        "game",
    ),
}

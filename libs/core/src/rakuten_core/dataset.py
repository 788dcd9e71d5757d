"""The on-disk layout shared by the data, train and predict services.

Raw data (as on the Hub)::

    <raw>/X_train_update.csv  <raw>/Y_train_CVw08PX.csv  <raw>/X_test_update.csv
    <raw>/images/image_train/image_<imageid>_product_<productid>.jpg
    <raw>/images/image_test/...

Prepared data: ``<processed>/{train,val,test}.parquet`` with :data:`PROCESSED_COLUMNS` and
``<processed>/data_report.json``. ``image_path`` is relative to the raw directory the tables were
prepared from (recorded in the report as ``raw_dir``) and empty when the product has no image.
Rows from a feedback slice (``prepare --feedback``) are relative to it too, through ``..``
(``../feedback/train/images/image_train/...``): readers join it to the raw directory as is.
"""

from __future__ import annotations

from pathlib import Path

X_TRAIN_FILE = "X_train_update.csv"
Y_TRAIN_FILE = "Y_train_CVw08PX.csv"
X_TEST_FILE = "X_test_update.csv"
IMAGES_DIR = "images"
TRAIN_IMAGES_DIR = "image_train"
TEST_IMAGES_DIR = "image_test"
RAW_TEXT_COLUMNS = ("designation", "description", "productid", "imageid")
LABEL_COLUMN = "prdtypecode"

SPLITS = ("train", "val", "test")
REPORT_FILE = "data_report.json"
PROCESSED_COLUMNS = (
    "productid",  # int64
    "imageid",  # int64
    "designation",  # raw designation (str)
    "description",  # raw description ("" when missing)
    "text",  # rakuten_core.text.product_text(designation, description)
    "image_path",  # str, relative to raw_dir; "" when the image is missing or unreadable
    "prdtypecode",  # int64
    "label",  # int64, index in rakuten_core.categories.CATEGORIES order
)


def image_filename(imageid: int, productid: int) -> str:
    """The challenge's image file name for a product."""
    return f"image_{int(imageid)}_product_{int(productid)}.jpg"


def image_path(raw_dir: str | Path, split_dir: str, imageid: int, productid: int) -> Path:
    """Absolute-or-relative path of a product's image under ``raw_dir``."""
    return Path(raw_dir) / IMAGES_DIR / split_dir / image_filename(imageid, productid)
